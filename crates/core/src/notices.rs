//! A messenger's offline-notice settings (CONTRACT §10): parsed once, so that the rest of the
//! code works with values that passed their checks.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::fields::{FieldError, Problems};

pub const DEFAULT_AFTER_SECONDS: u32 = 300;
pub const MAX_AFTER_SECONDS: u32 = 86_400;
pub const DEFAULT_SUBJECT: &str = "You have a new secure message";
/// A subject longer than this is refused (mail clients cut far shorter ones anyway).
pub const MAX_SUBJECT_CHARS: usize = 200;
pub const MAX_LINK_CHARS: usize = 2_000;

/// `{"email": {...}}`, as stored and as reads show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Notifications {
    pub email: EmailNotice,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailNotice {
    pub enabled: bool,
    pub after_seconds: u32,
    /// Where the email's link leads (the business's page that shows the messenger).
    pub link_url: Option<String>,
    pub subject: String,
}

impl Default for EmailNotice {
    fn default() -> Self {
        Self {
            enabled: false,
            after_seconds: DEFAULT_AFTER_SECONDS,
            link_url: None,
            subject: DEFAULT_SUBJECT.to_owned(),
        }
    }
}

fn err(field: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(field, message)
}

impl Notifications {
    /// Parse a `PUT …/notifications` body. A PUT replaces: `email` and `email.enabled` are
    /// required, the other fields take their defaults when absent (or null). `allow_http`
    /// (`--allow-private-urls on`) lets the link be `http://` on any host; otherwise `http://`
    /// only on a loopback host (development). Every field of `email` is checked, and the error
    /// names each bad one.
    pub fn parse(v: &Value, allow_http: bool) -> Result<Notifications, FieldError> {
        let obj = v
            .as_object()
            .ok_or_else(|| err("body", "must be a JSON object"))?;
        let email = match obj.get("email") {
            Some(Value::Object(e)) => e,
            Some(Value::Null) | None => return Err(err("email", "required")),
            Some(_) => return Err(err("email", "must be an object")),
        };
        // A bad field's stand-in value is never used: `finish` refuses the body then.
        let mut problems = Problems::new();
        let enabled = problems.or(enabled(email.get("enabled")), false);
        let after_seconds = problems.or(
            after_seconds(email.get("afterSeconds")),
            DEFAULT_AFTER_SECONDS,
        );
        let link_url = problems.check(match email.get("linkUrl") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => link_url(s, allow_http).map(Some),
            Some(_) => Err(err("email.linkUrl", "must be a string")),
        });
        if enabled && link_url == Some(None) {
            problems.push(err(
                "email.linkUrl",
                "required when notices are enabled (the page where the customer reads the message)",
            ));
        }
        let subject = problems.or(
            match email.get("subject") {
                None | Some(Value::Null) => Ok(DEFAULT_SUBJECT.to_owned()),
                Some(Value::String(s)) => subject(s),
                Some(_) => Err(err("email.subject", "must be a string")),
            },
            String::new(),
        );
        problems.finish()?;
        Ok(Notifications {
            email: EmailNotice {
                enabled,
                after_seconds,
                link_url: link_url.flatten(),
                subject,
            },
        })
    }
}

fn enabled(v: Option<&Value>) -> Result<bool, FieldError> {
    match v {
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Null) | None => Err(err("email.enabled", "required: true or false")),
        Some(_) => Err(err("email.enabled", "must be true or false")),
    }
}

fn after_seconds(v: Option<&Value>) -> Result<u32, FieldError> {
    match v {
        None | Some(Value::Null) => Ok(DEFAULT_AFTER_SECONDS),
        Some(n) => n
            .as_u64()
            .filter(|n| *n <= u64::from(MAX_AFTER_SECONDS))
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                err(
                    "email.afterSeconds",
                    format!("must be a whole number of seconds from 0 to {MAX_AFTER_SECONDS}"),
                )
            }),
    }
}

fn subject(s: &str) -> Result<String, FieldError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(err("email.subject", "must not be empty"));
    }
    if s.chars().count() > MAX_SUBJECT_CHARS {
        return Err(err(
            "email.subject",
            format!("must be at most {MAX_SUBJECT_CHARS} characters"),
        ));
    }
    // CR/LF would start new mail headers; other control characters have no place either.
    if s.chars().any(char::is_control) {
        return Err(err(
            "email.subject",
            "must be one line without control characters",
        ));
    }
    Ok(s.to_owned())
}

fn link_url(s: &str, allow_http: bool) -> Result<String, FieldError> {
    const WHY: &str =
        "must be an https:// address (http:// only on localhost, or with --allow-private-urls on)";
    if s.chars().count() > MAX_LINK_CHARS {
        return Err(err(
            "email.linkUrl",
            format!("must be at most {MAX_LINK_CHARS} characters"),
        ));
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(err(
            "email.linkUrl",
            "must not contain spaces or control characters",
        ));
    }
    let not_address = || {
        err(
            "email.linkUrl",
            format!("“{s}” is not a web address: it needs https:// and a host"),
        )
    };
    let url = Url::parse(s).map_err(|_| not_address())?;
    let host = url.host_str().unwrap_or_default();
    let ok = match url.scheme() {
        "https" if host.is_empty() => return Err(not_address()),
        "https" => true,
        "http" => allow_http || is_loopback(host),
        _ => false,
    };
    if !ok {
        return Err(err("email.linkUrl", WHY));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err(
            "email.linkUrl",
            "must not carry a user name or password",
        ));
    }
    Ok(url.to_string())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A plausible email address to send a notice to: one `@`, a non-empty local part and a
/// domain with a dot or `localhost`, no spaces, control characters, quotes or angle brackets,
/// at most 254 characters. (The mail library parses it again; this keeps odd values from
/// attributes out of the SMTP conversation.)
pub fn plausible_email(s: &str) -> bool {
    let s = s.trim();
    if s.is_empty() || s.len() > 254 {
        return false;
    }
    if s.chars().any(|c| {
        c.is_control()
            || c.is_whitespace()
            || matches!(c, '<' | '>' | '"' | ',' | ';' | '(' | ')' | '\\')
    }) {
        return false;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.contains('@')
        && local.len() <= 64
        && !domain.is_empty()
        && (domain.contains('.') || domain == "localhost")
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_and_required_fields() {
        let n = Notifications::parse(&json!({"email": {"enabled": false}}), false).unwrap();
        assert_eq!(n, Notifications::default());
        assert_eq!(
            Notifications::parse(&json!({}), false).unwrap_err().field,
            "email"
        );
        assert_eq!(
            Notifications::parse(&json!({"email": {}}), false)
                .unwrap_err()
                .field,
            "email.enabled"
        );
        assert_eq!(
            Notifications::parse(&json!({"email": {"enabled": true}}), false)
                .unwrap_err()
                .field,
            "email.linkUrl"
        );
        let n = Notifications::parse(
            &json!({"email": {"enabled": true, "afterSeconds": 0, "linkUrl": "https://portal.example.com/messages", "subject": " Hi "}}),
            false,
        )
        .unwrap();
        assert_eq!(n.email.after_seconds, 0);
        assert_eq!(n.email.subject, "Hi");
    }

    #[test]
    fn bad_values_name_their_field() {
        for (body, field) in [
            (json!({"email": {"enabled": "yes"}}), "email.enabled"),
            (
                json!({"email": {"enabled": false, "afterSeconds": 86401}}),
                "email.afterSeconds",
            ),
            (
                json!({"email": {"enabled": false, "afterSeconds": -1}}),
                "email.afterSeconds",
            ),
            (
                json!({"email": {"enabled": false, "afterSeconds": 1.5}}),
                "email.afterSeconds",
            ),
            (
                json!({"email": {"enabled": false, "linkUrl": "javascript:alert(1)"}}),
                "email.linkUrl",
            ),
            (
                json!({"email": {"enabled": false, "linkUrl": "http://portal.example.com/"}}),
                "email.linkUrl",
            ),
            (
                json!({"email": {"enabled": false, "linkUrl": "https://u:p@portal.example.com/"}}),
                "email.linkUrl",
            ),
            (
                json!({"email": {"enabled": false, "subject": "a\r\nBcc: x@y.z"}}),
                "email.subject",
            ),
            (
                json!({"email": {"enabled": false, "subject": "x".repeat(201)}}),
                "email.subject",
            ),
            (
                json!({"email": {"enabled": false, "subject": ""}}),
                "email.subject",
            ),
        ] {
            assert_eq!(
                Notifications::parse(&body, false).unwrap_err().field,
                field,
                "{body}"
            );
        }
        assert!(
            Notifications::parse(
                &json!({"email": {"enabled": false, "linkUrl": "http://127.0.0.1:8080/x"}}),
                false
            )
            .is_ok()
        );
        assert!(
            Notifications::parse(
                &json!({"email": {"enabled": false, "linkUrl": "http://portal.example.com/"}}),
                true
            )
            .is_ok()
        );
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let e = Notifications::parse(
            &json!({"email": {"enabled": "yes", "afterSeconds": -1, "linkUrl": "javascript:alert(1)", "subject": ""}}),
            false,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            confidant_testkit::fields_in(&e),
            [
                "email.enabled",
                "email.afterSeconds",
                "email.linkUrl",
                "email.subject"
            ],
            "{e}"
        );
        // An enabled notice with a bad link hears about the link, not also that one is needed.
        let e = Notifications::parse(
            &json!({"email": {"enabled": true, "linkUrl": "ftp://portal.example.com/"}}),
            false,
        )
        .unwrap_err();
        assert_eq!(e.field, "email.linkUrl");
        assert!(!e.message.contains("required"), "{e}");
        assert!(e.message.starts_with("must be an https:// address"), "{e}");
    }

    #[test]
    fn plausible_addresses() {
        for good in ["a@b.co", "mark.tylor+x@healthify.test", "root@localhost"] {
            assert!(plausible_email(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "@b.co",
            "a@",
            "a@b",
            "a b@c.d",
            "a@b.co\r\nBcc: x@y.z",
            "<a@b.co>",
            "a@b..co",
            "a@.b.co",
            "\"x\"@b.co",
        ] {
            assert!(!plausible_email(bad), "{bad:?}");
        }
    }
}
