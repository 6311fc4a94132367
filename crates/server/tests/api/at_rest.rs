//! The data at rest (CONTRACT §2 Files, Encryption at rest), from the side of someone who got a
//! copy of the database or a local account on the host: the data directory and its files are
//! the server's user's alone, and the database (file, WAL, dump) shows no message, shared token
//! or signing key in clear. A wrong master key stops the server; rotation keeps the data.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use confidant_testkit::process::free_port;
use confidant_testkit::*;
use serde_json::{Value, json};

use crate::BIN;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The real binary on a data directory of its own (SQLite in it), its log in `log`.
struct Binary {
    child: std::process::Child,
    http: Http,
}

impl Binary {
    async fn start(data_dir: &Path, extra: &[&str], log: &Path) -> Binary {
        let mut child = command(data_dir, extra, log);
        let port: u16 = extra
            .iter()
            .position(|a| *a == "--listen")
            .and_then(|i| extra[i + 1].rsplit(':').next()?.parse().ok())
            .expect("--listen 127.0.0.1:<port>");
        let http = Http::new(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.client.get(http.url("/healthz")).send().await
                && r.status().is_success()
            {
                return Binary { child, http };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the server exited ({status}): {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(tokio::time::Instant::now() < deadline, "not ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(mut self) {
        // SIGTERM: a clean stop (SQLite checkpoints and removes its WAL).
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(data_dir: &Path, extra: &[&str], log: &Path) -> std::process::Child {
    let out = std::fs::File::create(log).expect("log file");
    Command::new(BIN)
        .arg(extra.first().copied().unwrap_or("serve"))
        .args(extra.iter().skip(1))
        .env_remove("CONFIDANT_DATABASE_URL")
        .env_remove("CONFIDANT_MASTER_KEY_FILE")
        .env("CONFIDANT_DATA_DIR", data_dir)
        .env("CONFIDANT_ADMIN_TOKEN", OPERATOR)
        .env("CONFIDANT_RATE_LIMITS", "off")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("start the binary")
}

/// Run the binary to its end: (exit code, stdout and stderr).
fn run(data_dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("CONFIDANT_DATABASE_URL")
        .env_remove("CONFIDANT_MASTER_KEY_FILE")
        .env("CONFIDANT_DATA_DIR", data_dir)
        .env("CONFIDANT_ADMIN_TOKEN", OPERATOR)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn serve_args(port: u16) -> Vec<String> {
    vec![
        "serve".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn the_data_directory_and_every_file_in_it_are_the_servers_users_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let args = serve_args(free_port());
    let server = Binary::start(&data, &strs(&args), &tmp.path().join("log")).await;
    // A write, so that the WAL and the shared-memory file exist.
    let contact = server
        .http
        .site("Acme")
        .await
        .messenger(json!({}))
        .await
        .contact("mark@example.test")
        .await;
    contact.send("c-1", "hello").await;
    assert_eq!(mode(&data), 0o700, "the data directory");
    for file in [
        "confidant.db",
        "confidant.db-wal",
        "confidant.db-shm",
        "master.key",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    server.stop();
}

#[tokio::test]
async fn a_data_directory_open_to_others_is_reported_at_start_and_left_as_it_is() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let log = tmp.path().join("log");
    let args = serve_args(free_port());
    let server = Binary::start(&data, &strs(&args), &log).await;
    server.stop();
    let log = std::fs::read_to_string(&log).expect("log");
    let line = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("data directory is open to other users"));
    assert!(
        line.is_some_and(|l| l.contains("755")),
        "no warning in:\n{log}"
    );
    assert_eq!(
        mode(&data),
        0o755,
        "the operator's directory is not changed silently"
    );
    assert_eq!(mode(&data.join("confidant.db")), 0o600);
}

/// Every occurrence of `needle` in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The database as an attacker with a copy of it sees it: the SQLite file and its WAL, or a
/// `pg_dump` of the PostgreSQL database.
fn database_copy(database_url: &str) -> Vec<u8> {
    if let Some(rest) = database_url.strip_prefix("sqlite://") {
        let file = PathBuf::from(rest.split('?').next().expect("a path"));
        let mut bytes = std::fs::read(&file).expect("the database file");
        let wal = PathBuf::from(format!("{}-wal", file.display()));
        bytes.extend(std::fs::read(&wal).expect("the WAL (the server runs)"));
        return bytes;
    }
    let out = Command::new("pg_dump")
        .arg("--dbname")
        .arg(database_url)
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(contains(&out.stdout, b"CREATE TABLE public.messages"));
    out.stdout
}

#[tokio::test]
async fn a_copy_of_the_database_shows_no_message_shared_token_or_signing_key() {
    let s = Desk::open().await;
    let text = format!("my account number is {}", uuid::Uuid::new_v4().simple());
    let sent = s.mark.send("c-1", &text).await;
    assert_eq!(sent["body"], text.as_str());
    let keys = s.app.server().signing_keys().await;
    assert!(!keys.is_empty(), "the server made its signing key");

    let copy = database_copy(&s.app.database_url);
    assert!(
        contains(&copy, s.support.id.as_bytes()),
        "the copy is of this database"
    );
    assert!(!contains(&copy, text.as_bytes()), "the message's text");
    assert!(!contains(&copy, SECRET.as_bytes()), "the shared token");
    for (kid, pkcs8) in &keys {
        let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8);
        assert!(
            !contains(&copy, b64.as_bytes()),
            "signing key {kid} (base64)"
        );
        assert!(!contains(&copy, pkcs8), "signing key {kid} (DER)");
    }
    // Every read opens them: the message page, the conversation list, a repeated send.
    let conversation = sent["conversationId"].as_str().unwrap();
    let page = s.mark.messages(conversation, "").await;
    assert_eq!(page[0]["body"], text.as_str());
    let list = s.mark.conversations().await;
    assert!(
        list.to_string().contains(&text),
        "the last message in {list}"
    );
    let (status, again) = s.mark.try_send("c-1", &text).await;
    assert_eq!(status, 200, "a repeat is answered with the stored message");
    assert_eq!(again["messageId"], sent["messageId"]);
    assert_eq!(again["body"], text.as_str());
}

#[tokio::test]
async fn a_year_long_token_signed_with_the_servers_own_key_is_refused() {
    let s = Desk::open().await;
    let (kid, pkcs8) = s.app.server().signing_keys().await.remove(0);
    let key = jsonwebtoken::EncodingKey::from_ed_der(&pkcs8);
    let good = s.mark.token.clone();
    let parts: Vec<&str> = good.split('.').collect();
    let header: Value = serde_json::from_slice(&jwt::b64_decode(parts[0])).unwrap();
    assert_eq!(header["kid"], kid.as_str());
    let claims: Value = serde_json::from_slice(&jwt::b64_decode(parts[1])).unwrap();
    let now = jwt::now();
    let alg = jsonwebtoken::Algorithm::EdDSA;
    // Re-signed unchanged with the stolen key, the token works: the key is the right one.
    let resigned = jwt::sign_raw(&header, &claims, &key, alg);
    let r = s
        .app
        .get("/api/v1/messenger/conversations", Some(&resigned))
        .await;
    assert_eq!(r.status(), 200);
    for (what, iat, exp) in [
        ("a year's lifetime", now, now + 365 * 86_400),
        (
            "issued in a year",
            now + 365 * 86_400,
            now + 365 * 86_400 + 600,
        ),
    ] {
        let forged = jwt::merged(&claims, json!({"iat": iat, "exp": exp}));
        let token = jwt::sign_raw(&header, &forged, &key, alg);
        let r = s
            .app
            .get("/api/v1/messenger/conversations", Some(&token))
            .await;
        assert_eq!(
            error_code(r).await,
            (401, "unauthorized".to_owned()),
            "{what}"
        );
    }
}

/// A key file's text, as an operator would write one (hex).
fn key_text(byte: u8) -> String {
    format!("{byte:02x}").repeat(32)
}

#[tokio::test]
async fn a_wrong_or_missing_master_key_stops_the_server_and_no_key_is_overwritten() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let args = serve_args(free_port());
    let server = Binary::start(&data, &strs(&args), &tmp.path().join("log")).await;
    server
        .http
        .site("Acme")
        .await
        .messenger(json!({}))
        .await
        .contact("mark@example.test")
        .await
        .send("c-1", "hello")
        .await;
    server.stop();
    let key = data.join("master.key");
    let original = std::fs::read(&key).expect("the generated key");

    let wrong = tmp.path().join("wrong.key");
    std::fs::write(&wrong, key_text(7)).expect("write");
    let missing = tmp.path().join("missing.key");
    let garbage = tmp.path().join("garbage.key");
    std::fs::write(&garbage, "not a key").expect("write");
    for (file, says) in [
        (&wrong, "does not open the stored data"),
        (&missing, "does not exist"),
        (&garbage, "does not hold a 32-byte key"),
    ] {
        let mut args = serve_args(free_port());
        args.extend(["--master-key-file".into(), file.display().to_string()]);
        let (code, out) = run(&data, &strs(&args));
        assert!(
            code.is_some_and(|c| c != 0),
            "{file:?} exited {code:?}: {out}"
        );
        let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {out}");
        assert!(lines[0].contains(says), "{out}");
        assert!(
            !out.contains(&key_text(7)),
            "the key itself is never printed"
        );
    }
    assert!(!missing.exists(), "no key is generated over encrypted data");
    assert_eq!(
        std::fs::read(&key).expect("key"),
        original,
        "the key file is untouched"
    );
    // Without its key file at the default place, the same.
    std::fs::rename(&key, tmp.path().join("moved.key")).expect("move");
    let (code, out) = run(&data, &strs(&serve_args(free_port())));
    assert!(
        code.is_some_and(|c| c != 0) && out.contains("does not exist"),
        "{out}"
    );
    assert!(!key.exists(), "no new key at the default place either");
}

#[tokio::test]
async fn rotating_the_master_key_keeps_the_data_and_retires_the_old_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let old = data.join("master.key");
    let new = tmp.path().join("keys").join("new.key");
    let log = tmp.path().join("log");
    let port = free_port();
    let server = Binary::start(&data, &strs(&serve_args(port)), &log).await;
    let contact = server
        .http
        .site("Acme")
        .await
        .messenger(json!({}))
        .await
        .contact("mark@example.test")
        .await;
    let sent = contact.send("c-1", "before the rotation").await;
    let conversation = sent["conversationId"].as_str().unwrap().to_owned();

    // Step 1, while the server runs: wrap the data keys under a new key too.
    let rotate = |retire: bool| {
        let mut args = vec![
            "rotate-master-key".to_owned(),
            "--new-master-key-file".into(),
            new.display().to_string(),
        ];
        if retire {
            args.push("--retire-old".into());
        }
        run(&data, &strs(&args))
    };
    let (code, out) = rotate(false);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(mode(&new), 0o600, "the generated key file");
    // The running server goes on (its data keys are in memory), and writes.
    contact.send("c-2", "during the rotation").await;
    server.stop();

    // Step 2: restart with the new key; both keys open the data until the old one is retired.
    let with_new = |port: u16| {
        let mut a = serve_args(port);
        a.extend(["--master-key-file".into(), new.display().to_string()]);
        a
    };
    let server = Binary::start(&data, &strs(&with_new(port)), &log).await;
    let page = contact.messages(&conversation, "").await;
    let bodies: Vec<&str> = page.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["before the rotation", "during the rotation"]);
    server.stop();

    // Step 3: retire the old wraps. The old key no longer opens anything; the new one does.
    let (code, out) = rotate(true);
    assert_eq!(code, Some(0), "{out}");
    let mut args = serve_args(free_port());
    args.extend(["--master-key-file".into(), old.display().to_string()]);
    let (code, out) = run(&data, &strs(&args));
    assert!(code.is_some_and(|c| c != 0), "{out}");
    assert!(out.contains("does not open the stored data"), "{out}");
    let server = Binary::start(&data, &strs(&with_new(port)), &log).await;
    let page = contact.messages(&conversation, "").await;
    assert_eq!(page[0]["body"], "before the rotation");
    server.stop();
}
