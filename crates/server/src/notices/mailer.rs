//! The email side of offline notices: the SMTP transport (`--smtp-url`, lettre over tokio) and
//! the one template. A notice says that a secure message waits and where to read it; it never
//! holds the message, the agent's name or any attribute of the contact but its address.

use std::time::Duration;

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use secrecy::ExposeSecret as _;

use crate::config::{SmtpSettings, SmtpTls};

/// How long one SMTP conversation may take (connect, greeting, each command).
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// What one notice says.
pub struct NoticeMail<'a> {
    pub subject: &'a str,
    /// The business (the site's name).
    pub site_name: &'a str,
    pub link_url: Option<&'a str>,
    /// A test from the admin pages: says so.
    pub test: bool,
}

/// Why a mail did not go out.
#[derive(Debug)]
pub enum SendError {
    /// The mail server refused for good (5xx): retrying will not help.
    Permanent(String),
    /// Down, a timeout, a 4xx, a TLS failure: worth retrying.
    Temporary(String),
    /// The address or the mail could not be built.
    Invalid(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Permanent(e) => write!(f, "the mail server refused the mail: {e}"),
            Self::Temporary(e) => write!(f, "the mail could not be sent: {e}"),
            Self::Invalid(e) => f.write_str(e),
        }
    }
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(s: &SmtpSettings) -> anyhow::Result<Mailer> {
        use anyhow::Context as _;
        type T = AsyncSmtpTransport<Tokio1Executor>;
        let mut builder = match s.tls {
            SmtpTls::None => T::builder_dangerous(&s.host),
            SmtpTls::StartTls => T::starttls_relay(&s.host).context("--smtp-url: TLS setup")?,
            SmtpTls::Implicit => T::relay(&s.host).context("--smtp-url: TLS setup")?,
        }
        .port(s.port)
        .timeout(Some(SMTP_TIMEOUT))
        .pool_config(PoolConfig::new().max_size(4));
        if let Some(user) = &s.user {
            let password = s
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let from = s
            .from
            .parse()
            .map_err(|_| anyhow::anyhow!("--smtp-from is not an address"))?;
        Ok(Mailer {
            transport: builder.build(),
            from,
        })
    }

    pub async fn send(&self, to: &str, mail: &NoticeMail<'_>) -> Result<(), SendError> {
        let message = build(&self.from, to, mail)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Temporary(e.to_string())),
        }
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): autoresponders do not answer a notice.
#[derive(Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// The notice as a multipart/alternative mail (plain text and HTML from the same lines).
pub fn build(from: &Mailbox, to: &str, mail: &NoticeMail<'_>) -> Result<Message, SendError> {
    let to: Mailbox = to
        .parse()
        .map_err(|_| SendError::Invalid("to: not an email address".into()))?;
    let site = one_line(mail.site_name);
    let (text, html) = bodies(&site, mail.link_url, mail.test);
    let subject = if mail.test {
        format!("[Test] {}", one_line(mail.subject))
    } else {
        one_line(mail.subject)
    };
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(None)
        .header(AutoSubmitted)
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| SendError::Invalid(e.to_string()))
}

fn bodies(site: &str, link: Option<&str>, test: bool) -> (String, String) {
    let mut lines: Vec<(String, String)> = Vec::new();
    if test {
        let l = format!(
            "This is a test of the secure message notices of {site}. Customers get the mail below."
        );
        lines.push((l.clone(), escape(&l)));
    }
    let l = format!("You have a new secure message from {site}.");
    lines.push((l.clone(), escape(&l)));
    if let Some(link) = link {
        lines.push((
            format!("Read it here: {link}"),
            format!("<a href=\"{0}\">Read it here</a>: {0}", escape(link)),
        ));
    }
    let l = "For your privacy the message itself is not in this email. This is an automatic \
             notice; replies to it are not read.";
    lines.push((l.to_owned(), escape(l)));
    let text = lines
        .iter()
        .map(|(t, _)| t.as_str())
        .collect::<Vec<_>>()
        .join("\r\n\r\n");
    let html = format!(
        "<!doctype html><html><body>{}</body></html>",
        lines
            .iter()
            .map(|(_, h)| format!("<p>{h}</p>"))
            .collect::<String>()
    );
    (text + "\r\n", html)
}

/// A value on one line: control characters (CR, LF, …) become spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mail_has_its_headers_and_escapes_the_site_name() {
        let from: Mailbox = "Notices <notices@confidant.test>".parse().unwrap();
        let m = build(
            &from,
            "mark@example.test",
            &NoticeMail {
                subject: "New message\r\nBcc: evil@example.test",
                site_name: "Acme <b>Health</b>",
                link_url: Some("https://portal.example.com/m?a=1&b=2"),
                test: false,
            },
        )
        .unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("Auto-Submitted: auto-generated"), "{raw}");
        assert!(raw.contains("Message-ID: <"), "{raw}");
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        // The parts are quoted-printable on the wire; their text as built:
        let (text, html) = bodies(
            "Acme <b>Health</b>",
            Some("https://portal.example.com/m?a=1&b=2"),
            false,
        );
        assert!(text.contains("Read it here: https://portal.example.com/m?a=1&b=2"));
        assert!(html.contains("Acme &lt;b&gt;Health&lt;/b&gt;"), "{html}");
        assert!(
            html.contains("href=\"https://portal.example.com/m?a=1&amp;b=2\""),
            "{html}"
        );
        assert!(
            build(
                &from,
                "not an address",
                &NoticeMail {
                    subject: "s",
                    site_name: "x",
                    link_url: None,
                    test: true
                }
            )
            .is_err()
        );
    }
}
