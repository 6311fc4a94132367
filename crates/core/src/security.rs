//! A messenger's Security settings (CONTRACT §5, "the Security tab").
//!
//! `Security::parse` turns the JSON an admin sends into checked settings with a field-level
//! error; `public_json` is what reads show (never a shared secret). Key material is checked
//! here only for shape: the identity crate parses PEM keys when settings are saved.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use url::Url;

use crate::fields::{FieldError, Problems};
use crate::urls::AllowedUrl;

pub const MIN_SECRET_BYTES: usize = 32;
pub const MAX_SECRET_BYTES: usize = 4096;
pub const MAX_PEM_BYTES: usize = 16 * 1024;
pub const MAX_ALLOWED_URLS: usize = 100;
pub const MAX_CLOCK_SKEW: u32 = 300;
pub const DEFAULT_CLOCK_SKEW: u32 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Text,
    Base64url,
}

/// How Contact JWTs of a messenger are verified.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "camelCase")]
pub enum Validation {
    /// HMAC. `secret` is the text as given; `encoding` says how it becomes key bytes.
    #[serde(rename_all = "camelCase")]
    SharedToken { secret: String, encoding: Encoding },
    #[serde(rename_all = "camelCase")]
    PublicKey { public_key: String },
    #[serde(rename_all = "camelCase")]
    Jwks { jwks_url: String },
}

impl std::fmt::Debug for Validation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SharedToken { encoding, .. } => {
                write!(f, "SharedToken({encoding:?}, <redacted>)")
            }
            Self::PublicKey { .. } => write!(f, "PublicKey"),
            Self::Jwks { jwks_url } => write!(f, "Jwks({jwks_url})"),
        }
    }
}

impl Validation {
    /// The method's name as the contract spells it: `sharedToken`, `publicKey` or `jwks`.
    pub fn method(&self) -> &'static str {
        match self {
            Self::SharedToken { .. } => "sharedToken",
            Self::PublicKey { .. } => "publicKey",
            Self::Jwks { .. } => "jwks",
        }
    }

    /// The HMAC key bytes of a shared token.
    pub fn secret_bytes(secret: &str, encoding: Encoding) -> Option<Vec<u8>> {
        match encoding {
            Encoding::Text => Some(secret.as_bytes().to_vec()),
            Encoding::Base64url => URL_SAFE_NO_PAD.decode(secret.trim_end_matches('=')).ok(),
        }
    }
}

impl Validation {
    /// Whether `other` verifies with a different key: another method, other secret bytes or
    /// encoding, another PEM key (white space aside) or another JWKS URL. Only such a change
    /// starts a rollover (CONTRACT §5).
    pub fn differs_from(&self, other: &Validation) -> bool {
        match (self, other) {
            (
                Self::SharedToken {
                    secret: a,
                    encoding: ea,
                },
                Self::SharedToken {
                    secret: b,
                    encoding: eb,
                },
            ) => ea != eb || Self::secret_bytes(a, *ea) != Self::secret_bytes(b, *eb),
            (Self::PublicKey { public_key: a }, Self::PublicKey { public_key: b }) => {
                let bare = |pem: &str| pem.split_whitespace().collect::<String>();
                bare(a) != bare(b)
            }
            (Self::Jwks { jwks_url: a }, Self::Jwks { jwks_url: b }) => a != b,
            _ => true,
        }
    }
}

/// The longest rollover (CONTRACT §5): seven days.
pub const MAX_ROLLOVER_SECONDS: u32 = 604_800;

/// `rolloverSeconds` of a `PUT …/security` body: absent or null is 0.
pub fn rollover_seconds(body: &Value) -> Result<u32, FieldError> {
    match body.get("rolloverSeconds") {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_u64()
            .filter(|n| *n <= u64::from(MAX_ROLLOVER_SECONDS))
            .map(|n| n as u32)
            .ok_or_else(|| {
                FieldError::new(
                    "rolloverSeconds",
                    "must be a whole number of seconds from 0 to 604800 (7 days)",
                )
            }),
    }
}

/// The validation a change replaced, still verifying until `until` (CONTRACT §5 "Rollover").
/// Stored sealed like the current one; never shown with its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousValidation {
    pub validation: Validation,
    /// Unix seconds: the previous validation verifies while the clock is before it.
    pub until: i64,
}

impl PreviousValidation {
    /// The previous validation of a change made at `now_ms` with a rollover of `seconds`: it
    /// ends on a whole second at least `seconds` after the change (`None` for 0).
    pub fn starting(validation: Validation, now_ms: i64, seconds: u32) -> Option<Self> {
        (seconds > 0).then(|| PreviousValidation {
            validation,
            until: now_ms.div_euclid(1000) + 1 + i64::from(seconds),
        })
    }

    /// Whether it still verifies at `now` (Unix seconds).
    pub fn active_at(&self, now: i64) -> bool {
        now < self.until
    }

    /// What reads show while it lasts: the method and the end, never a secret.
    pub fn public_json(&self) -> Value {
        json!({
            "method": self.validation.method(),
            "until": crate::time_fmt::rfc3339_millis(self.until.saturating_mul(1000)),
        })
    }
}

/// Checked Security settings, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Security {
    pub validation: Validation,
    pub contact_identity_key: String,
    /// Kept as the normalised text of each entry; `allowed()` parses them.
    pub allowed_urls: Vec<String>,
    pub clock_skew_seconds: u32,
    pub max_token_lifetime_seconds: Option<u64>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// CONTRACT §11. Settings stored before attachments existed read as the defaults.
    #[serde(default)]
    pub attachments: Attachments,
}

/// The largest `attachments.maxBytes` (CONTRACT §11): 25 MiB.
pub const MAX_ATTACHMENT_BYTES: u64 = 26_214_400;
pub const DEFAULT_ATTACHMENT_BYTES: u64 = 10_485_760;

/// The types `attachments.allowedTypes` may name: those whose signature the server recognises
/// (an upload's type is what its first bytes are, never what the client says).
pub const KNOWN_ATTACHMENT_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/heif",
    "image/avif",
    "application/pdf",
    "application/zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "audio/mpeg",
    "audio/ogg",
    "audio/x-wav",
    "video/mp4",
    "video/webm",
    "video/quicktime",
];

/// A messenger's attachment settings (CONTRACT §11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachments {
    pub enabled: bool,
    pub max_bytes: u64,
    pub allowed_types: Vec<String>,
}

impl Default for Attachments {
    fn default() -> Self {
        Self {
            enabled: false,
            max_bytes: DEFAULT_ATTACHMENT_BYTES,
            allowed_types: ["image/png", "image/jpeg", "application/pdf"]
                .map(str::to_owned)
                .to_vec(),
        }
    }
}

impl Attachments {
    /// The settings, or the defaults where a field is absent; each bad field is noted in
    /// `problems` (then the value returned is never used).
    fn parse(v: Option<&Value>, problems: &mut Problems) -> Attachments {
        let d = Attachments::default();
        let obj = match v {
            None | Some(Value::Null) => return d,
            Some(Value::Object(o)) => o,
            Some(_) => {
                problems.push(FieldError::new("attachments", "must be an object"));
                return d;
            }
        };
        let enabled = match obj.get("enabled") {
            None | Some(Value::Null) => d.enabled,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                problems.push(FieldError::new(
                    "attachments.enabled",
                    "must be true or false",
                ));
                d.enabled
            }
        };
        let max_bytes = match obj.get("maxBytes") {
            None | Some(Value::Null) => Ok(d.max_bytes),
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_ATTACHMENT_BYTES).contains(n))
                .ok_or_else(|| {
                    FieldError::new(
                        "attachments.maxBytes",
                        "must be a whole number of bytes from 1 to 26214400",
                    )
                }),
        };
        let max_bytes = problems.or(max_bytes, d.max_bytes);
        let allowed_types = match obj.get("allowedTypes") {
            None | Some(Value::Null) => d.allowed_types,
            Some(Value::Array(items)) if !items.is_empty() => {
                let mut out: Vec<String> = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if let Some(t) = problems.check(attachment_type(item, i))
                        && !out.contains(&t)
                    {
                        out.push(t);
                    }
                }
                out
            }
            Some(_) => {
                problems.push(FieldError::new(
                    "attachments.allowedTypes",
                    "must be a non-empty array of MIME types",
                ));
                d.allowed_types
            }
        };
        Attachments {
            enabled,
            max_bytes,
            allowed_types,
        }
    }

    pub fn allows(&self, content_type: &str) -> bool {
        self.allowed_types.iter().any(|t| t == content_type)
    }
}

/// Entry `i` of `attachments.allowedTypes`: a type the server recognises, in lower case.
fn attachment_type(item: &Value, i: usize) -> Result<String, FieldError> {
    let field = format!("attachments.allowedTypes[{i}]");
    let t = item
        .as_str()
        .map(|t| t.trim().to_ascii_lowercase())
        .ok_or_else(|| FieldError::new(&field, "must be a string"))?;
    if !KNOWN_ATTACHMENT_TYPES.contains(&t.as_str()) {
        return Err(FieldError::new(
            &field,
            format!(
                "must be one of the types the server recognises: {}",
                KNOWN_ATTACHMENT_TYPES.join(", ")
            ),
        ));
    }
    Ok(t)
}

/// What `Security::parse` needs besides the JSON.
pub struct SecurityInput<'a> {
    /// The settings being replaced, if any: `"sharedToken": null` keeps their secret.
    pub previous: Option<&'a Security>,
    /// `--allow-private-urls on`: the URL rule (`crate::outbound`) keeps only its shape checks.
    pub allow_private_urls: bool,
}

/// The outcome of a parse: the settings, and the secret the server generated, if it did
/// (shown once, in the answer to the request that made it).
pub struct Parsed {
    pub security: Security,
    pub generated_secret: Option<String>,
}

impl Security {
    /// Parse the JSON of a Security object. `generate` makes a fresh random shared token when
    /// the request omits `validation.sharedToken`.
    pub fn parse(
        value: &Value,
        ctx: &SecurityInput<'_>,
        generate: impl FnOnce() -> String,
    ) -> Result<Parsed, FieldError> {
        let obj = value
            .as_object()
            .ok_or_else(|| FieldError::new("security", "must be an object"))?;
        // Every field is checked, and every problem named in one answer (a form marks each).
        let mut problems = Problems::new();
        let validation = problems.check(match (obj.get("validation"), ctx.previous) {
            // A PUT replaces the whole object (docs/API-DESIGN.md): an absent field takes its
            // default, so an absent method would have to be kept silently while the fields
            // beside it reset. It is required instead; `"sharedToken": null` keeps a secret.
            (None | Some(Value::Null), Some(_)) => Err(FieldError::new(
                "validation",
                "is required: a PUT replaces every setting (send {\"method\": \"sharedToken\", \"sharedToken\": null} to keep the shared token)",
            )),
            (None | Some(Value::Null), None) => {
                Ok(generated_token(generate))
            }
            (Some(v), _) => parse_validation(v, ctx, generate),
        });
        let contact_identity_key = problems.or(contact_identity_key(obj), String::new());
        let allowed_urls = allowed_urls(obj.get("allowedUrls"), &mut problems);
        let clock_skew_seconds = problems.or(clock_skew_seconds(obj), DEFAULT_CLOCK_SKEW);
        let max_token_lifetime_seconds = problems.or(max_token_lifetime_seconds(obj), None);
        let issuer = problems.or(optional_text(obj, "issuer"), None);
        let audience = problems.or(optional_text(obj, "audience"), None);
        let attachments = Attachments::parse(obj.get("attachments"), &mut problems);
        problems.finish()?;
        let Some((validation, generated_secret)) = validation else {
            return Err(FieldError::new("validation", "is required"));
        };
        Ok(Parsed {
            security: Security {
                validation,
                contact_identity_key,
                allowed_urls,
                clock_skew_seconds,
                max_token_lifetime_seconds,
                issuer,
                audience,
                attachments,
            },
            generated_secret,
        })
    }

    /// The allowed URLs, parsed. Stored entries were checked when saved.
    pub fn allowed(&self) -> Vec<AllowedUrl> {
        self.allowed_urls
            .iter()
            .filter_map(|s| AllowedUrl::parse(s).ok())
            .collect()
    }

    /// What reads show: never the shared token. `shown_secret` is the generated secret of the
    /// request that made it, the one time it is shown.
    pub fn public_json(&self, shown_secret: Option<&str>) -> Value {
        let validation = match &self.validation {
            Validation::SharedToken { encoding, .. } => json!({
                "method": "sharedToken",
                "sharedToken": shown_secret,
                "sharedTokenSet": true,
                "encoding": encoding,
            }),
            Validation::PublicKey { public_key } => {
                json!({"method": "publicKey", "publicKey": public_key})
            }
            Validation::Jwks { jwks_url } => json!({"method": "jwks", "jwksUrl": jwks_url}),
        };
        json!({
            "validation": validation,
            "contactIdentityKey": self.contact_identity_key,
            "allowedUrls": self.allowed_urls,
            "clockSkewSeconds": self.clock_skew_seconds,
            "maxTokenLifetimeSeconds": self.max_token_lifetime_seconds,
            "issuer": self.issuer,
            "audience": self.audience,
            "attachments": self.attachments,
        })
    }
}

/// A shared token the server makes, and the secret to show once.
fn generated_token(generate: impl FnOnce() -> String) -> (Validation, Option<String>) {
    let s = generate();
    (
        Validation::SharedToken {
            secret: s.clone(),
            encoding: Encoding::Text,
        },
        Some(s),
    )
}

fn contact_identity_key(obj: &Map<String, Value>) -> Result<String, FieldError> {
    match obj.get("contactIdentityKey") {
        None | Some(Value::Null) => Ok("sub".to_owned()),
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 128 => Ok(s.clone()),
        Some(_) => Err(FieldError::new(
            "contactIdentityKey",
            "must be a claim name of 1 to 128 characters",
        )),
    }
}

/// The normalised entries, without repeats; each bad entry is a problem of its own
/// (`allowedUrls[2]`), so that a form marks every one.
fn allowed_urls(v: Option<&Value>, problems: &mut Problems) -> Vec<String> {
    let items = match v {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) if items.len() > MAX_ALLOWED_URLS => {
            problems.push(FieldError::new(
                "allowedUrls",
                format!("at most {MAX_ALLOWED_URLS} entries"),
            ));
            return Vec::new();
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            problems.push(FieldError::new("allowedUrls", "must be an array of URLs"));
            return Vec::new();
        }
    };
    let mut out: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("allowedUrls[{i}]");
        let parsed = item
            .as_str()
            .ok_or_else(|| FieldError::new(&field, "must be a string"))
            .and_then(|s| AllowedUrl::parse(s).map_err(|e| FieldError::new(&field, e.0)));
        if let Some(text) = problems.check(parsed).map(|u| u.to_string())
            && !out.contains(&text)
        {
            out.push(text);
        }
    }
    out
}

fn clock_skew_seconds(obj: &Map<String, Value>) -> Result<u32, FieldError> {
    match obj.get("clockSkewSeconds") {
        None | Some(Value::Null) => Ok(DEFAULT_CLOCK_SKEW),
        Some(v) => v
            .as_u64()
            .filter(|n| *n <= u64::from(MAX_CLOCK_SKEW))
            .map(|n| n as u32)
            .ok_or_else(|| {
                FieldError::new("clockSkewSeconds", "must be a whole number from 0 to 300")
            }),
    }
}

fn max_token_lifetime_seconds(obj: &Map<String, Value>) -> Result<Option<u64>, FieldError> {
    match obj.get("maxTokenLifetimeSeconds") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=10 * 365 * 86_400).contains(n))
            .map(Some)
            .ok_or_else(|| {
                FieldError::new(
                    "maxTokenLifetimeSeconds",
                    "must be empty (no cap) or a whole number of seconds from 1 to 315360000",
                )
            }),
    }
}

fn optional_text(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 1024 => Ok(Some(s.clone())),
        Some(_) => Err(FieldError::new(
            field,
            "must be null or a string of 1 to 1024 characters",
        )),
    }
}

fn parse_validation(
    v: &Value,
    ctx: &SecurityInput<'_>,
    generate: impl FnOnce() -> String,
) -> Result<(Validation, Option<String>), FieldError> {
    let obj = v
        .as_object()
        .ok_or_else(|| FieldError::new("validation", "must be an object"))?;
    let method = obj.get("method").and_then(Value::as_str).ok_or_else(|| {
        FieldError::new(
            "validation.method",
            "must be one of sharedToken, publicKey, jwks",
        )
    })?;
    match method {
        "sharedToken" => {
            let encoding = match obj.get("encoding") {
                None | Some(Value::Null) => Encoding::Text,
                Some(Value::String(s)) if s == "text" => Encoding::Text,
                Some(Value::String(s)) if s == "base64url" => Encoding::Base64url,
                Some(_) => {
                    return Err(FieldError::new(
                        "validation.encoding",
                        "must be text or base64url",
                    ));
                }
            };
            // `"sharedToken": null` (as reads show it) or `"keepSharedToken": true` keeps the
            // secret already set; an absent field asks the server to generate a new one.
            let keep = obj.get("keepSharedToken").and_then(Value::as_bool) == Some(true);
            let given = if keep {
                Some(&Value::Null)
            } else {
                obj.get("sharedToken")
            };
            match given {
                // Absent: the server generates one, shown once.
                None => Ok(generated_token(generate)),
                Some(Value::Null) => match ctx.previous.map(|p| &p.validation) {
                    Some(Validation::SharedToken {
                        secret,
                        encoding: prev_enc,
                    }) => {
                        if obj.get("encoding").is_some_and(|e| !e.is_null())
                            && *prev_enc != encoding
                        {
                            return Err(FieldError::new(
                                "validation.sharedToken",
                                "changing the encoding needs the secret again",
                            ));
                        }
                        Ok((
                            Validation::SharedToken {
                                secret: secret.clone(),
                                encoding: *prev_enc,
                            },
                            None,
                        ))
                    }
                    _ => Err(FieldError::new(
                        "validation.sharedToken",
                        "no shared token is set yet: give one, or omit the field to have one generated",
                    )),
                },
                Some(Value::String(s)) => {
                    let bytes = Validation::secret_bytes(s, encoding).ok_or_else(|| {
                        FieldError::new("validation.sharedToken", "is not valid base64url")
                    })?;
                    if bytes.len() < MIN_SECRET_BYTES {
                        return Err(FieldError::new(
                            "validation.sharedToken",
                            format!(
                                "must be at least {MIN_SECRET_BYTES} bytes (it is {})",
                                bytes.len()
                            ),
                        ));
                    }
                    if bytes.len() > MAX_SECRET_BYTES {
                        return Err(FieldError::new(
                            "validation.sharedToken",
                            format!("must be at most {MAX_SECRET_BYTES} bytes"),
                        ));
                    }
                    Ok((
                        Validation::SharedToken {
                            secret: s.clone(),
                            encoding,
                        },
                        None,
                    ))
                }
                Some(_) => Err(FieldError::new(
                    "validation.sharedToken",
                    "must be a string",
                )),
            }
        }
        "publicKey" => {
            let pem = obj
                .get("publicKey")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    FieldError::new("validation.publicKey", "must be a PEM public key")
                })?;
            if pem.len() > MAX_PEM_BYTES {
                return Err(FieldError::new(
                    "validation.publicKey",
                    "is too large for a public key",
                ));
            }
            Ok((
                Validation::PublicKey {
                    public_key: pem.to_owned(),
                },
                None,
            ))
        }
        "jwks" => {
            let raw = obj
                .get("jwksUrl")
                .and_then(Value::as_str)
                .ok_or_else(|| FieldError::new("validation.jwksUrl", "must be an https:// URL"))?;
            let url = Url::parse(raw.trim()).map_err(|_| {
                FieldError::new(
                    "validation.jwksUrl",
                    format!(
                        "“{}” is not a web address: it needs https:// and a host",
                        raw.trim()
                    ),
                )
            })?;
            crate::outbound::check(&url, ctx.allow_private_urls)
                .map_err(|e| FieldError::new("validation.jwksUrl", e.to_string()))?;
            Ok((
                Validation::Jwks {
                    jwks_url: url.to_string(),
                },
                None,
            ))
        }
        other => Err(FieldError::new(
            "validation.method",
            format!("unknown method {other:?}: use sharedToken, publicKey or jwks"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<Parsed, FieldError> {
        Security::parse(
            &v,
            &SecurityInput {
                previous: None,
                allow_private_urls: false,
            },
            || "g".repeat(43),
        )
    }

    #[test]
    fn defaults_and_generated_secret() {
        let p = parse(json!({})).unwrap();
        assert_eq!(p.security.contact_identity_key, "sub");
        assert_eq!(p.security.clock_skew_seconds, 60);
        assert_eq!(p.generated_secret.as_deref(), Some(&*"g".repeat(43)));
        let shown = p.security.public_json(None);
        assert_eq!(shown["validation"]["sharedToken"], Value::Null);
        assert_eq!(shown["validation"]["sharedTokenSet"], true);
    }

    #[test]
    fn secret_rules() {
        let short =
            parse(json!({"validation": {"method": "sharedToken", "sharedToken": "x".repeat(31)}}));
        assert_eq!(short.err().unwrap().field, "validation.sharedToken");
        assert!(
            parse(json!({"validation": {"method": "sharedToken", "sharedToken": "x".repeat(32)}}))
                .is_ok()
        );
        // 43 base64url chars = 32 bytes; 42 chars = 31 bytes.
        assert!(parse(json!({"validation": {"method": "sharedToken", "encoding": "base64url", "sharedToken": "A".repeat(43)}})).is_ok());
        assert!(parse(json!({"validation": {"method": "sharedToken", "encoding": "base64url", "sharedToken": "A".repeat(42)}})).is_err());
        assert!(parse(json!({"validation": {"method": "sharedToken", "encoding": "base64url", "sharedToken": "!!!!".repeat(20)}})).is_err());
    }

    /// A change to `first`, which must not generate a secret.
    fn change(first: &Security, v: Value) -> Parsed {
        let ctx = SecurityInput {
            previous: Some(first),
            allow_private_urls: false,
        };
        Security::parse(&v, &ctx, || unreachable!()).unwrap()
    }

    fn shared_token_security() -> Security {
        parse(json!({"validation": {"method": "sharedToken", "sharedToken": "s".repeat(40)}}))
            .unwrap()
            .security
    }

    #[test]
    fn null_secret_keeps_previous() {
        let first = shared_token_security();
        let again = change(&first, first.public_json(None));
        assert_eq!(again.security, first);
        assert!(again.generated_secret.is_none());
    }

    #[test]
    fn a_change_without_validation_is_refused_not_merged() {
        let first = shared_token_security();
        let ctx = SecurityInput {
            previous: Some(&first),
            allow_private_urls: false,
        };
        for v in [
            json!({}),
            json!({"clockSkewSeconds": 10}),
            json!({"validation": null}),
        ] {
            let e = Security::parse(&v, &ctx, || unreachable!()).err();
            assert_eq!(e.map(|e| e.field), Some("validation".to_owned()), "{v}");
        }
        let next = change(
            &first,
            json!({"validation": {"method": "sharedToken", "sharedToken": null}, "clockSkewSeconds": 10}),
        );
        assert_eq!(next.security.validation, first.validation);
        assert_eq!(next.security.clock_skew_seconds, 10);
    }

    #[test]
    fn field_errors() {
        for (v, field) in [
            (json!({"clockSkewSeconds": 301}), "clockSkewSeconds"),
            (json!({"clockSkewSeconds": -1}), "clockSkewSeconds"),
            (json!({"clockSkewSeconds": "60"}), "clockSkewSeconds"),
            (
                json!({"maxTokenLifetimeSeconds": 0}),
                "maxTokenLifetimeSeconds",
            ),
            (json!({"contactIdentityKey": ""}), "contactIdentityKey"),
            (json!({"allowedUrls": ["nope"]}), "allowedUrls[0]"),
            (json!({"issuer": 5}), "issuer"),
            (
                json!({"validation": {"method": "magic"}}),
                "validation.method",
            ),
            (
                json!({"validation": {"method": "jwks", "jwksUrl": "http://keys.example.com/jwks"}}),
                "validation.jwksUrl",
            ),
            (
                json!({"validation": {"method": "publicKey"}}),
                "validation.publicKey",
            ),
        ] {
            assert_eq!(
                parse(v.clone()).err().map(|e| e.field),
                Some(field.to_owned()),
                "{v}"
            );
        }
        // Loopback is private: refused without --allow-private-urls on, allowed with it.
        let loopback =
            json!({"validation": {"method": "jwks", "jwksUrl": "http://127.0.0.1:9/jwks"}});
        assert!(parse(loopback.clone()).is_err());
        let private = SecurityInput {
            previous: None,
            allow_private_urls: true,
        };
        assert!(Security::parse(&loopback, &private, String::new).is_ok());
    }

    #[test]
    fn only_another_key_is_a_different_validation() {
        let text = |s: &str| Validation::SharedToken {
            secret: s.into(),
            encoding: Encoding::Text,
        };
        let b64 = |s: &str| Validation::SharedToken {
            secret: s.into(),
            encoding: Encoding::Base64url,
        };
        let pem = |s: &str| Validation::PublicKey {
            public_key: s.into(),
        };
        let a = "A".repeat(43);
        assert!(!text(&a).differs_from(&text(&a)));
        assert!(text(&a).differs_from(&text(&"B".repeat(43))));
        // The same text read as other bytes is another key.
        assert!(text(&a).differs_from(&b64(&a)));
        // Padding aside, the same base64url bytes are the same key.
        assert!(!b64(&a).differs_from(&b64(&format!("{a}="))));
        assert!(
            !pem("-----BEGIN PUBLIC KEY-----\nAB\nCD\n-----END PUBLIC KEY-----").differs_from(
                &pem("-----BEGIN PUBLIC KEY-----\r\nAB\r\nCD\r\n-----END PUBLIC KEY-----\n")
            )
        );
        assert!(pem("x AB").differs_from(&pem("x AC")));
        assert!(text(&a).differs_from(&pem(&a)));
        let jwks = |u: &str| Validation::Jwks { jwks_url: u.into() };
        assert!(!jwks("https://a.test/k").differs_from(&jwks("https://a.test/k")));
        assert!(jwks("https://a.test/k").differs_from(&jwks("https://b.test/k")));
    }

    #[test]
    fn rollover_seconds_and_its_end() {
        assert_eq!(rollover_seconds(&json!({})), Ok(0));
        assert_eq!(rollover_seconds(&json!({"rolloverSeconds": null})), Ok(0));
        assert_eq!(
            rollover_seconds(&json!({"rolloverSeconds": 604_800})),
            Ok(604_800)
        );
        for bad in [
            json!(604_801),
            json!(-1),
            json!(1.5),
            json!("60"),
            json!(true),
        ] {
            let e = rollover_seconds(&json!({ "rolloverSeconds": bad })).unwrap_err();
            assert_eq!(e.field, "rolloverSeconds", "{bad}");
        }
        let v = Validation::Jwks {
            jwks_url: "https://a.test/k".into(),
        };
        assert!(PreviousValidation::starting(v.clone(), 1_000_500, 0).is_none());
        // It ends on a whole second at least N seconds after the change.
        let p = PreviousValidation::starting(v, 1_000_500, 10).unwrap();
        assert_eq!(p.until, 1_011);
        assert!(p.active_at(1_010) && !p.active_at(1_011));
        assert_eq!(
            p.public_json(),
            json!({"method": "jwks", "until": "1970-01-01T00:16:51Z"})
        );
    }
}
