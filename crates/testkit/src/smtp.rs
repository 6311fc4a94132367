//! A small SMTP server for the tests: it takes every mail into memory, can answer every
//! transaction with a temporary (4xx) or permanent (5xx) refusal, and can go down and come
//! back on the same port. Enough SMTP for a client that sends plain-text SMTP (EHLO, MAIL,
//! RCPT, DATA, RSET, NOOP, QUIT); no TLS, no AUTH.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// How the sink answers the end of a mail's DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkMode {
    Accept,
    /// `451`: try again later.
    Temporary,
    /// `550`: refused for good.
    Permanent,
}

/// One mail as the sink received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The whole message (headers and body) as sent, dot-unstuffed.
    pub raw: String,
}

impl Mail {
    /// A header's value (the first one of that name), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        header_of(head(&self.raw), name)
    }

    /// Every text part (`text/plain`, `text/html`), decoded from quoted-printable or base64,
    /// joined: what a reader of the mail sees.
    pub fn texts(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        parts(&self.raw, &mut out);
        out
    }

    /// The decoded text of the part of type `content_type` (e.g. `text/plain`).
    pub fn text(&self, content_type: &str) -> Option<String> {
        self.texts()
            .into_iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(content_type))
            .map(|(_, body)| body)
    }
}

fn head(raw: &str) -> &str {
    raw.split("\r\n\r\n").next().unwrap_or_default()
}

fn body(raw: &str) -> &str {
    raw.split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default()
}

fn header_of(head: &str, name: &str) -> Option<String> {
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.split("\r\n").find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// The text parts of a MIME entity, recursively.
fn parts(entity: &str, out: &mut Vec<(String, String)>) {
    let h = head(entity);
    let content_type = header_of(h, "Content-Type").unwrap_or_else(|| "text/plain".into());
    let kind = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if kind.starts_with("multipart/") {
        let Some(boundary) = content_type.split(';').find_map(|p| {
            let p = p.trim();
            p.strip_prefix("boundary=")
                .map(|b| b.trim_matches('"').to_owned())
        }) else {
            return;
        };
        let delimiter = format!("--{boundary}");
        for part in body(entity).split(&delimiter).skip(1) {
            if part.starts_with("--") {
                break;
            }
            parts(part.trim_start_matches("\r\n"), out);
        }
    } else if kind.starts_with("text/") {
        let encoding = header_of(h, "Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let b = body(entity);
        let text = match encoding.as_str() {
            "base64" => {
                let compact: String = b.chars().filter(|c| !c.is_whitespace()).collect();
                String::from_utf8_lossy(
                    &base64::engine::general_purpose::STANDARD
                        .decode(compact)
                        .unwrap_or_default(),
                )
                .into_owned()
            }
            "quoted-printable" => quoted_printable(b),
            _ => b.to_owned(),
        };
        out.push((kind, text));
    }
}

fn quoted_printable(s: &str) -> String {
    let s = s.replace("=\r\n", "");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(hex), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Shared {
    mode: SinkMode,
    mails: Vec<Mail>,
    /// Transactions refused (by a 4xx or 5xx mode).
    refused: usize,
}

/// The sink. Dropping it stops it.
pub struct SmtpSink {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    tasks: Mutex<JoinSet<()>>,
}

impl SmtpSink {
    /// A sink listening on a free loopback port.
    pub async fn start() -> SmtpSink {
        let sink = Self::down();
        sink.up().await;
        sink
    }

    /// A sink on a free port that does not listen yet (a mail server that is down): [`up`]
    /// starts it.
    pub fn down() -> SmtpSink {
        SmtpSink {
            port: crate::process::free_port(),
            shared: Arc::new(Mutex::new(Shared {
                mode: SinkMode::Accept,
                mails: Vec::new(),
                refused: 0,
            })),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    /// `smtp://127.0.0.1:<port>`, for `--smtp-url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Listen (again) on the sink's port.
    pub async fn up(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the SMTP sink cannot listen on {}: {e}", self.port),
            }
        };
        let shared = self.shared.clone();
        self.tasks
            .lock()
            .expect("tasks")
            .spawn(accept(listener, shared));
    }

    /// Stop listening and drop every open connection (the mail server goes away).
    pub fn stop(&self) {
        self.tasks.lock().expect("tasks").abort_all();
    }

    pub fn set_mode(&self, mode: SinkMode) {
        self.shared.lock().expect("sink").mode = mode;
    }

    /// The mails received so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.shared.lock().expect("sink").mails.clone()
    }

    /// How many transactions the sink refused (4xx or 5xx modes).
    pub fn refused(&self) -> usize {
        self.shared.lock().expect("sink").refused
    }

    /// Wait until at least `n` mails arrived (at most `within`); the mails.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mails = self.mails();
            if mails.len() >= n || tokio::time::Instant::now() >= deadline {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Ok(mut t) = self.tasks.lock() {
            t.abort_all();
        }
    }
}

async fn accept(listener: TcpListener, shared: Arc<Mutex<Shared>>) {
    let mut connections = JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        connections.spawn(session(stream, shared.clone()));
    }
}

async fn session(stream: tokio::net::TcpStream, shared: Arc<Mutex<Shared>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if !say(&mut write, "220 sink.test ESMTP test sink").await {
        return;
    }
    let mut from = String::new();
    let mut to = Vec::new();
    loop {
        let mut line = String::new();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = line.trim_end();
        let verb = line
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" => "250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8".to_owned(),
            "HELO" => "250 sink.test".to_owned(),
            "MAIL" => {
                from = address(line);
                to.clear();
                "250 ok".to_owned()
            }
            "RCPT" => {
                to.push(address(line));
                "250 ok".to_owned()
            }
            "DATA" => {
                if !say(&mut write, "354 go ahead").await {
                    return;
                }
                let mut raw = String::new();
                loop {
                    let mut l = String::new();
                    match lines.read_line(&mut l).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if l == ".\r\n" || l == ".\n" {
                        break;
                    }
                    let l = l.strip_prefix('.').unwrap_or(&l);
                    raw.push_str(l);
                }
                let mut s = shared.lock().expect("sink");
                match s.mode {
                    SinkMode::Accept => {
                        s.mails.push(Mail {
                            from: from.clone(),
                            to: to.clone(),
                            raw,
                        });
                        "250 ok: queued".to_owned()
                    }
                    SinkMode::Temporary => {
                        s.refused += 1;
                        "451 4.3.0 try again later".to_owned()
                    }
                    SinkMode::Permanent => {
                        s.refused += 1;
                        "550 5.1.1 no such mailbox".to_owned()
                    }
                }
            }
            "RSET" | "NOOP" => "250 ok".to_owned(),
            "QUIT" => {
                let _ = say(&mut write, "221 bye").await;
                return;
            }
            _ => "502 not implemented".to_owned(),
        };
        if !say(&mut write, &reply).await {
            return;
        }
    }
}

async fn say(w: &mut tokio::net::tcp::OwnedWriteHalf, text: &str) -> bool {
    w.write_all(format!("{text}\r\n").as_bytes()).await.is_ok()
}

/// The address of `MAIL FROM:<a@b>` or `RCPT TO:<a@b>`.
fn address(line: &str) -> String {
    line.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(a, _)| a.to_owned())
        .unwrap_or_default()
}
