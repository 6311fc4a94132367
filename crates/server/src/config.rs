//! Settings (CONTRACT §2), parsed once. Flags win over the environment; bad values end the
//! process with a one-line reason.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use url::Url;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CONFIDANT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// sqlite://… (default: a file under the data directory) or postgres://…
    #[arg(long, env = "CONFIDANT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// nats://host:port to share live events between server processes (default: in-process).
    #[arg(long, env = "CONFIDANT_BUS_URL")]
    pub bus_url: Option<String>,
    /// The origin browsers reach the server at (default: http:// + the listen address).
    #[arg(long, env = "CONFIDANT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// `on` or `off`.
    #[arg(long, env = "CONFIDANT_RATE_LIMITS", default_value = "on")]
    pub rate_limits: String,
    /// Where the SQLite file and the generated operator token live.
    #[arg(long, env = "CONFIDANT_DATA_DIR", default_value = "./confidant-data")]
    pub data_dir: PathBuf,
    /// Allow plain-http JWKS URLs on non-loopback hosts (not recommended).
    #[arg(long, env = "CONFIDANT_ALLOW_HTTP_JWKS", default_value = "false")]
    pub allow_http_jwks: String,
    /// Lifetime of access tokens, in seconds (60 to 86400).
    #[arg(long, env = "CONFIDANT_ACCESS_TOKEN_TTL", default_value = "3600")]
    pub access_token_ttl: String,
}

/// A secret that never prints.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub bus_url: Option<String>,
    /// The public origin with no trailing slash, e.g. `https://chat.example.com`.
    pub public_url: String,
    pub rate_limits: bool,
    pub data_dir: PathBuf,
    pub allow_http_jwks: bool,
    pub access_token_ttl: i64,
    pub admin_token: Option<Secret>,
    /// Secure cookies (the public URL is https).
    pub secure_cookies: bool,
}

impl Config {
    pub fn from_args(a: &ServeArgs) -> Result<Config, String> {
        let listen: SocketAddr = a.listen.parse().map_err(|_| {
            format!(
                "--listen {:?} is not an address like 127.0.0.1:8080",
                a.listen
            )
        })?;
        let database_url = match &a.database_url {
            Some(u)
                if u.starts_with("postgres://")
                    || u.starts_with("postgresql://")
                    || u.starts_with("sqlite:") =>
            {
                u.clone()
            }
            Some(u) => {
                return Err(format!(
                    "--database-url must start with sqlite: or postgres:// (got {:?})",
                    scheme_of(u)
                ));
            }
            None => {
                let file = a.data_dir.join("confidant.db");
                format!("sqlite://{}?mode=rwc", file.display())
            }
        };
        let bus_url = match a.bus_url.as_deref() {
            None | Some("") | Some("in-process") => None,
            Some(u) if u.starts_with("nats://") && Url::parse(u).is_ok() => Some(u.to_owned()),
            Some(u) => {
                return Err(format!(
                    "--bus-url must be nats://host:port (got {:?})",
                    scheme_of(u)
                ));
            }
        };
        let public_url = match &a.public_url {
            Some(u) => {
                let url = Url::parse(u).map_err(|_| format!("--public-url {u:?} is not a URL"))?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(format!(
                        "--public-url {u:?} must be an http:// or https:// origin"
                    ));
                }
                if url.path() != "/" || url.query().is_some() {
                    return Err(format!(
                        "--public-url {u:?} must be an origin without a path"
                    ));
                }
                url.origin().ascii_serialization()
            }
            None => format!("http://{listen}"),
        };
        let rate_limits = match a.rate_limits.as_str() {
            "on" => true,
            "off" => false,
            other => return Err(format!("--rate-limits must be on or off (got {other:?})")),
        };
        let allow_http_jwks = match a.allow_http_jwks.as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" | "" => false,
            other => {
                return Err(format!(
                    "CONFIDANT_ALLOW_HTTP_JWKS must be true or false (got {other:?})"
                ));
            }
        };
        let access_token_ttl = a
            .access_token_ttl
            .parse::<i64>()
            .ok()
            .filter(|t| (60..=86_400).contains(t))
            .ok_or_else(|| {
                format!(
                    "--access-token-ttl must be 60 to 86400 seconds (got {:?})",
                    a.access_token_ttl
                )
            })?;
        let admin_token = match std::env::var("CONFIDANT_ADMIN_TOKEN") {
            Ok(t) if t.len() >= 16 => Some(Secret(t)),
            Ok(t) if t.is_empty() => None,
            Ok(_) => return Err("CONFIDANT_ADMIN_TOKEN must be at least 16 characters".into()),
            Err(_) => None,
        };
        Ok(Config {
            listen,
            database_url,
            bus_url,
            secure_cookies: public_url.starts_with("https://"),
            public_url,
            rate_limits,
            data_dir: a.data_dir.clone(),
            allow_http_jwks,
            access_token_ttl,
            admin_token,
        })
    }

    /// The host part of the public URL, for messages and the demo.
    pub fn public_origin(&self) -> &str {
        &self.public_url
    }
}

/// Only the scheme of a URL, so that an error never echoes a password in it.
fn scheme_of(u: &str) -> String {
    u.split("://")
        .next()
        .unwrap_or_default()
        .chars()
        .take(20)
        .collect()
}
