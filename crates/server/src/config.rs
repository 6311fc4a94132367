//! Settings (CONTRACT §2), parsed once. Flags win over the environment; bad values end the
//! process with a one-line reason. Secrets (the operator token, URLs that may carry a password)
//! are `SecretString`s, so `Config`'s `Debug` never prints them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ipnet::IpNet;
use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

/// `on` or `off`, as the contract spells switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn is_on(self) -> bool {
        self == Switch::On
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CONFIDANT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// sqlite://… (default: a file under the data directory) or postgres://…
    #[arg(long, env = "CONFIDANT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// nats://host:port to share live events between server processes (default: in-process).
    /// `nats://user:password@…` or `nats://token@…` authenticate; `tls://…` requires TLS.
    #[arg(long, env = "CONFIDANT_BUS_URL", hide_env_values = true)]
    pub bus_url: Option<String>,
    /// A NATS credentials file (user JWT and NKey seed) to authenticate to the bus with.
    #[arg(long, env = "CONFIDANT_BUS_CREDS_FILE")]
    pub bus_creds_file: Option<PathBuf>,
    /// Require TLS on the bus connection (as a `tls://` bus URL does).
    #[arg(long, env = "CONFIDANT_BUS_TLS", value_enum, default_value = "off")]
    pub bus_tls: Switch,
    /// The origin browsers reach the server at (default: http:// + the listen address).
    #[arg(long, env = "CONFIDANT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Rate limits on requests (the login lockout stays either way).
    #[arg(long, env = "CONFIDANT_RATE_LIMITS", value_enum, default_value = "on")]
    pub rate_limits: Switch,
    /// Where the SQLite file and the generated operator token live.
    #[arg(long, env = "CONFIDANT_DATA_DIR", default_value = "./confidant-data")]
    pub data_dir: PathBuf,
    /// Let the URLs the server fetches (JWKS) use plain http and reach loopback, private and
    /// other non-public addresses (development only).
    #[arg(
        long,
        env = "CONFIDANT_ALLOW_PRIVATE_URLS",
        value_enum,
        default_value = "off"
    )]
    pub allow_private_urls: Switch,
    /// Proxies whose X-Forwarded-For is believed for rate limits: addresses or CIDRs, comma
    /// separated (default: none; the peer's address counts).
    #[arg(long, env = "CONFIDANT_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// The master key that wraps the data keys (default: <data dir>/master.key, generated on a
    /// first start over a database with no encrypted data). Keep it apart from database backups.
    #[arg(long, env = "CONFIDANT_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Lifetime of access tokens, in seconds (60 to 86400).
    #[arg(long, env = "CONFIDANT_ACCESS_TOKEN_TTL", default_value = "3600",
          value_parser = clap::value_parser!(i64).range(60..=86_400))]
    pub access_token_ttl: i64,
    /// Where offline notices go out: `smtp://host:port` (plain, for a local relay),
    /// `smtp://host:port?tls=starttls` (STARTTLS required) or `smtps://host:port` (TLS from
    /// the start); `user:password@` authenticates (percent-encoded). Unset: no email.
    #[arg(long, env = "CONFIDANT_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The From of notices, e.g. `Acme Support <noreply@acme.example>` (needed with --smtp-url).
    #[arg(long, env = "CONFIDANT_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Where attachment bytes live: a directory (default <data dir>/attachments; also
    /// `file:///path`) or `s3://bucket/prefix` (AWS_ENDPOINT_URL, AWS_REGION,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY from the environment).
    #[arg(long, env = "CONFIDANT_ATTACHMENTS_URL")]
    pub attachments_url: Option<String>,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtp://`: plain text (a relay on the same host or network).
    None,
    /// `smtp://…?tls=starttls`: STARTTLS, required (no fallback to plain text).
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
}

/// `--smtp-url` and `--smtp-from`, parsed. `Debug` never prints the password.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub user: Option<String>,
    pub password: Option<SecretString>,
    pub from: String,
}

/// Where attachment bytes live (`--attachments-url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentsUrl {
    /// A directory on this machine (created 0700, files 0600).
    Local(PathBuf),
    /// An S3-compatible bucket, and a key prefix without leading or trailing slashes.
    S3 { bucket: String, prefix: String },
}

impl AttachmentsUrl {
    fn parse(given: Option<&str>, data_dir: &std::path::Path) -> Result<Self, String> {
        let Some(u) = given.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(AttachmentsUrl::Local(data_dir.join("attachments")));
        };
        if let Some(rest) = u.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
            if !valid_bucket {
                return Err(
                    "--attachments-url s3://BUCKET/prefix: the bucket must be 3 to 63 lowercase \
                     letters, digits, dots or hyphens"
                        .into(),
                );
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|p| p == "." || p == "..")
                || prefix.bytes().any(|b| b.is_ascii_control())
            {
                return Err(
                    "--attachments-url: the S3 prefix may not hold . or .. segments".into(),
                );
            }
            return Ok(AttachmentsUrl::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        let path = u.strip_prefix("file://").unwrap_or(u);
        if u.contains("://") && !u.starts_with("file://") {
            return Err(format!(
                "--attachments-url must be a directory, file:///path or s3://bucket/prefix (got {:?})",
                scheme_of(u)
            ));
        }
        Ok(AttachmentsUrl::Local(PathBuf::from(path)))
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// May carry a password (`postgres://user:pass@…`).
    pub database_url: SecretString,
    /// May carry a password (`nats://user:pass@…`) or a token (`nats://token@…`).
    pub bus_url: Option<SecretString>,
    pub bus_creds_file: Option<PathBuf>,
    pub bus_tls: bool,
    /// The public origin with no trailing slash, e.g. `https://chat.example.com`.
    pub public_url: String,
    pub rate_limits: bool,
    /// `--trusted-proxies`: peers whose `X-Forwarded-For` names the client (limits.rs).
    pub trusted_proxies: Vec<IpNet>,
    pub data_dir: PathBuf,
    /// `--allow-private-urls on`: the URL rule (CONTRACT §5) keeps only its shape checks.
    pub allow_private_urls: bool,
    /// The master key file (`--master-key-file`, default `<data dir>/master.key`).
    pub master_key_file: PathBuf,
    pub access_token_ttl: i64,
    pub admin_token: Option<SecretString>,
    /// Secure cookies (the public URL is https).
    pub secure_cookies: bool,
    /// `--smtp-url` / `--smtp-from`: `None` sends no email.
    pub smtp: Option<SmtpSettings>,
    /// `--attachments-url`.
    pub attachments: AttachmentsUrl,
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
            None | Some("" | "in-process") => None,
            Some(u)
                if (u.starts_with("nats://") || u.starts_with("tls://"))
                    && Url::parse(u).is_ok_and(|url| url.has_host()) =>
            {
                Some(u.to_owned())
            }
            Some(u) => {
                return Err(format!(
                    "--bus-url must be nats://host:port or tls://host:port (got {:?})",
                    scheme_of(u)
                ));
            }
        };
        if bus_url.is_none() && (a.bus_creds_file.is_some() || a.bus_tls.is_on()) {
            return Err("--bus-creds-file and --bus-tls need a --bus-url".into());
        }
        let public_url = match &a.public_url {
            Some(u) => public_origin(u)?,
            None => format!("http://{listen}"),
        };
        let trusted_proxies = a
            .trusted_proxies
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "--trusted-proxies {p:?} is not an address or a CIDR like 10.0.0.0/8"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let admin_token = match std::env::var("CONFIDANT_ADMIN_TOKEN") {
            Ok(t) if t.len() >= 16 => Some(SecretString::from(t)),
            Ok(t) if t.is_empty() => None,
            Ok(_) => return Err("CONFIDANT_ADMIN_TOKEN must be at least 16 characters".into()),
            Err(_) => None,
        };
        let smtp = smtp_settings(a.smtp_url.as_deref(), a.smtp_from.as_deref())?;
        let attachments = AttachmentsUrl::parse(a.attachments_url.as_deref(), &a.data_dir)?;
        Ok(Config {
            smtp,
            attachments,
            listen,
            database_url: database_url.into(),
            bus_url: bus_url.map(SecretString::from),
            bus_creds_file: a.bus_creds_file.clone(),
            bus_tls: a.bus_tls.is_on(),
            secure_cookies: public_url.starts_with("https://"),
            public_url,
            rate_limits: a.rate_limits.is_on(),
            trusted_proxies,
            data_dir: a.data_dir.clone(),
            allow_private_urls: a.allow_private_urls.is_on(),
            master_key_file: a
                .master_key_file
                .clone()
                .unwrap_or_else(|| a.data_dir.join("master.key")),
            access_token_ttl: a.access_token_ttl,
            admin_token,
        })
    }

    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}

/// `--public-url` as an origin: http(s), a host, no path or query.
fn public_origin(u: &str) -> Result<String, String> {
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
    Ok(url.origin().ascii_serialization())
}

/// `--smtp-url` and `--smtp-from`. Errors never echo the URL (it may hold a password).
fn smtp_settings(url: Option<&str>, from: Option<&str>) -> Result<Option<SmtpSettings>, String> {
    let url = url.map(str::trim).filter(|u| !u.is_empty());
    let from = from.map(str::trim).filter(|f| !f.is_empty());
    let Some(u) = url else {
        if from.is_some() {
            return Err("--smtp-from needs an --smtp-url".into());
        }
        return Ok(None);
    };
    const SHAPE: &str =
        "--smtp-url must be smtp://host[:port][?tls=starttls] or smtps://host[:port]";
    let url = Url::parse(u).map_err(|_| SHAPE.to_owned())?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| SHAPE.to_owned())?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if !matches!(url.path(), "" | "/") {
        return Err(SHAPE.into());
    }
    let mut starttls = false;
    for (k, v) in url.query_pairs() {
        match (&*k, &*v) {
            ("tls", "starttls") => starttls = true,
            ("tls", "none") => {}
            _ => return Err(format!("{SHAPE} (unknown query parameter {k:?})")),
        }
    }
    let (tls, default_port) = match url.scheme() {
        "smtp" if starttls => (SmtpTls::StartTls, 587),
        "smtp" => (SmtpTls::None, 25),
        "smtps" if !starttls => (SmtpTls::Implicit, 465),
        _ => return Err(SHAPE.into()),
    };
    let decode = |s: &str| {
        percent_decode(s).ok_or_else(|| {
            "--smtp-url: the user or password is not valid percent-encoded UTF-8".to_owned()
        })
    };
    let user = match url.username() {
        "" => None,
        u => Some(decode(u)?),
    };
    let password = url
        .password()
        .map(decode)
        .transpose()?
        .map(SecretString::from);
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if (user.is_some() || password.is_some()) && tls == SmtpTls::None && !loopback {
        return Err(
            "--smtp-url: a user and password need TLS (smtps:// or ?tls=starttls); plain smtp:// \
             would send them in clear"
                .into(),
        );
    }
    let from = from.ok_or("--smtp-url needs --smtp-from (the From address of notices)")?;
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(format!(
            "--smtp-from {from:?} is not an address like noreply@example.com or \"Acme <noreply@example.com>\""
        ));
    }
    Ok(Some(SmtpSettings {
        port: url.port().unwrap_or(default_port),
        host,
        tls,
        user,
        password,
        from: from.to_owned(),
    }))
}

/// `%XX` decoding of a URL's user or password (the `url` crate keeps them encoded).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn debug_never_prints_a_password_or_token() {
        let cli = Cli::parse_from([
            "confidant",
            "--database-url",
            "postgres://app:hunter2-password@db.internal/confidant",
            "--bus-url",
            "nats://bus:nats-password@127.0.0.1:4222",
        ]);
        let mut config = Config::from_args(&cli.serve).expect("valid settings");
        config.admin_token = Some(SecretString::from("operator-token-0123456789"));
        let printed = format!("{config:?}");
        let cli = Cli::parse_from([
            "confidant",
            "--smtp-url",
            "smtps://mailer%40acme:smtp%2Fpass%3Aword@mail.example.com",
            "--smtp-from",
            "Acme <noreply@acme.example>",
        ]);
        let smtp = Config::from_args(&cli.serve).expect("valid smtp settings");
        let printed_smtp = format!("{smtp:?}");
        assert!(
            !printed_smtp.contains("smtp/pass:word") && !printed_smtp.contains("pass%3Aword"),
            "{printed_smtp}"
        );
        let s = smtp.smtp.expect("smtp");
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("mail.example.com", 465, SmtpTls::Implicit)
        );
        assert_eq!(s.user.as_deref(), Some("mailer@acme"));
        assert_eq!(
            s.password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .as_deref(),
            Some("smtp/pass:word")
        );
        for secret in [
            "hunter2-password",
            "nats-password",
            "operator-token-0123456789",
        ] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert_eq!(
            config.database_url(),
            "postgres://app:hunter2-password@db.internal/confidant"
        );
    }

    #[test]
    fn switches_and_ranges_are_parsed_by_clap() {
        assert!(Cli::try_parse_from(["confidant", "--rate-limits", "maybe"]).is_err());
        assert!(Cli::try_parse_from(["confidant", "--access-token-ttl", "59"]).is_err());
        let cli = Cli::parse_from(["confidant", "--rate-limits", "off"]);
        assert!(!Config::from_args(&cli.serve).expect("valid").rate_limits);
        assert!(Cli::try_parse_from(["confidant", "--allow-private-urls", "true"]).is_err());
        let default = Cli::parse_from(["confidant"]);
        assert!(
            !Config::from_args(&default.serve)
                .expect("valid")
                .allow_private_urls
        );
        let on = Cli::parse_from(["confidant", "--allow-private-urls", "on"]);
        assert!(
            Config::from_args(&on.serve)
                .expect("valid")
                .allow_private_urls
        );
        let cli = Cli::parse_from([
            "confidant",
            "--trusted-proxies",
            "10.0.0.0/8, 127.0.0.1,::1",
        ]);
        assert_eq!(
            Config::from_args(&cli.serve)
                .expect("valid")
                .trusted_proxies
                .len(),
            3
        );
        let cli = Cli::parse_from(["confidant", "--trusted-proxies", "10.0.0.0/8;"]);
        assert!(Config::from_args(&cli.serve).is_err());
    }

    #[test]
    fn smtp_urls() {
        let parse = |url: &str, from: Option<&str>| {
            let mut args = vec!["confidant", "--smtp-url", url];
            if let Some(f) = from {
                args.extend(["--smtp-from", f]);
            }
            Config::from_args(&Cli::parse_from(args).serve).map(|c| c.smtp.expect("smtp"))
        };
        let from = Some("noreply@acme.example");
        let plain = parse("smtp://127.0.0.1:2525", from).expect("plain");
        assert_eq!((plain.port, plain.tls), (2525, SmtpTls::None));
        let starttls = parse("smtp://u:p@mail.example.com?tls=starttls", from).expect("starttls");
        assert_eq!((starttls.port, starttls.tls), (587, SmtpTls::StartTls));
        assert!(
            parse("smtp://127.0.0.1:2525", None).is_err(),
            "needs a From"
        );
        assert!(parse("smtp://127.0.0.1:2525", Some("not an address")).is_err());
        let e = parse("smtp://user:secret-pw@mail.example.com", from).expect_err("clear password");
        assert!(!e.contains("secret-pw"), "{e}");
        assert!(parse("http://mail.example.com", from).is_err());
        assert!(parse("smtp://mail.example.com?tls=maybe", from).is_err());
        let e = parse("smtps://user:secret-pw@/", from).expect_err("no host");
        assert!(!e.contains("secret-pw"), "{e}");
        let none = Config::from_args(&Cli::parse_from(["confidant"]).serve).expect("valid");
        assert!(none.smtp.is_none());
        assert!(
            Config::from_args(&Cli::parse_from(["confidant", "--smtp-from", "a@b.co"]).serve)
                .is_err()
        );
    }
}
