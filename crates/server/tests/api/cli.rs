//! The binary (CONTRACT §2): bad settings end it with a one-line reason and a non-zero code;
//! SIGTERM ends `serve` cleanly with 0.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::BIN;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(args)
        .env_remove("CONFIDANT_LISTEN")
        .env_remove("CONFIDANT_DATABASE_URL")
        .env_remove("CONFIDANT_RATE_LIMITS")
        .env_remove("CONFIDANT_PUBLIC_URL")
        .env_remove("CONFIDANT_BUS_URL")
        .env("CONFIDANT_DATA_DIR", dir.path())
        .env(
            "CONFIDANT_ADMIN_TOKEN",
            "cli-test-operator-token-0123456789",
        )
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_settings_exit_non_zero_with_one_line() {
    for (args, mentions, secret) in [
        (
            &["serve", "--listen", "not-an-address"][..],
            "--listen",
            None,
        ),
        (
            &["serve", "--listen", "127.0.0.1:99999"][..],
            "--listen",
            None,
        ),
        (
            &[
                "serve",
                "--database-url",
                "mysql://root:hunter2secret@db/confidant",
            ][..],
            "--database-url",
            Some("hunter2secret"),
        ),
        (
            &["serve", "--rate-limits", "maybe"][..],
            "--rate-limits",
            None,
        ),
        (
            &["serve", "--public-url", "chat.example.com"][..],
            "--public-url",
            None,
        ),
        (&["serve", "--bus-url", "redis://x"][..], "--bus-url", None),
        (
            &["demo", "--rate-limits", "maybe"][..],
            "--rate-limits",
            None,
        ),
        (&["serve", "--no-such-flag"][..], "--no-such-flag", None),
        (&["frobnicate"][..], "frobnicate", None),
    ] {
        let (code, stderr) = run(args);
        assert!(
            code.is_some_and(|c| c != 0),
            "{args:?} exited with {code:?}"
        );
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "{args:?} should say one line, said: {stderr}"
        );
        assert!(lines[0].contains(mentions), "{args:?}: {stderr}");
        if let Some(s) = secret {
            assert!(!stderr.contains(s), "{args:?} printed a password: {stderr}");
        }
    }
}

#[test]
fn the_environment_is_read_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .arg("serve")
        .env("CONFIDANT_RATE_LIMITS", "sometimes")
        .env("CONFIDANT_DATA_DIR", dir.path())
        .output()
        .expect("run");
    assert!(out.status.code().is_some_and(|c| c != 0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sometimes"));
}

#[test]
fn sigterm_ends_serve_with_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db])
        .env("CONFIDANT_DATA_DIR", dir.path())
        .env(
            "CONFIDANT_ADMIN_TOKEN",
            "cli-test-operator-token-0123456789",
        )
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Wait for the "listening" log line, which names the bound address.
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("listening") {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the server never said it was listening")
        });
    // The server answers before we stop it.
    let addr = line
        .split("addr=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("addr in the log line")
        .to_owned();
    let mut ok = false;
    if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
        use std::io::{Read as _, Write as _};
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        ok = buf.starts_with("HTTP/1.1 200");
    }
    assert!(ok, "GET /livez on {addr} failed");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let code = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not exit within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0), "serve exited with {code:?} on SIGTERM");
}

/// `confidant demo` on `database_url`: `Ok` with the running child and its `password:` line
/// once it says it is ready, `Err` with its exit code and stderr if it ends first.
fn demo(
    database_url: &str,
    data_dir: &std::path::Path,
    master_key_file: Option<&str>,
) -> Result<(std::process::Child, String), (Option<i32>, String)> {
    let mut args = vec![
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        database_url,
    ];
    if let Some(key) = master_key_file {
        args.extend(["--master-key-file", key]);
    }
    let mut child = Command::new(BIN)
        .args(args)
        .env("CONFIDANT_DATA_DIR", data_dir)
        .env(
            "CONFIDANT_ADMIN_TOKEN",
            "cli-test-operator-token-0123456789",
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("password:") {
                let _ = tx.send(line);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(line) = rx.try_recv() {
            return Ok((child, line));
        }
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            use std::io::Read as _;
            let _ = child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut stderr);
            return Err((status.code(), stderr));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("demo neither started nor ended within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn demo_refuses_a_database_with_a_site_it_did_not_make() {
    let mut app = confidant_testkit::TestApp::spawn().await;
    let acme = app.site("Acme").await;
    assert_eq!(acme.id, 10_000, "the real site takes the demo's id");
    acme.messenger(serde_json::json!({})).await;
    app.stop().await;

    let data_dir = tempfile::tempdir().expect("tempdir");
    let (url, key) = (app.database_url.clone(), app.master_key_file.clone());
    let refused = tokio::task::spawn_blocking({
        let dir = data_dir.path().to_path_buf();
        move || demo(&url, &dir, Some(&key))
    })
    .await
    .expect("demo");
    let (code, stderr) = match refused {
        Ok((mut child, _)) => {
            let _ = child.kill();
            panic!("demo started on a database with a real site");
        }
        Err(e) => e,
    };
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, said: {stderr}");
    assert!(lines[0].contains("did not make"), "{stderr}");

    // The site is untouched: no demo agent, its one messenger.
    let server = confidant_testkit::ServerProcess::start(
        BIN,
        &app.database_url,
        &["--master-key-file", &app.master_key_file],
    )
    .await;
    let op = Some(confidant_testkit::OPERATOR);
    let agents: serde_json::Value = server
        .get("/api/v1/sites/10000/agents", op)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(agents["agents"], serde_json::json!([]), "{agents}");
    let messengers: serde_json::Value = server
        .get("/api/v1/sites/10000/messengers", op)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(messengers["messengers"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn demo_starts_again_on_its_own_database() {
    let db = confidant_testkit::TestDb::create().await;
    let data_dir = tempfile::tempdir().expect("tempdir");
    let (url, dir) = (db.url.clone(), data_dir.path().to_path_buf());
    let (first, second) = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for _ in 0..2 {
            match demo(&url, &dir, None) {
                Ok((mut child, password)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    lines.push(password);
                }
                Err((code, stderr)) => panic!("demo did not start again ({code:?}): {stderr}"),
            }
        }
        (lines[0].clone(), lines[1].clone())
    })
    .await
    .expect("demo");
    assert_eq!(first, second, "the same demo agent both times");
}

/// A raw `GET path` on `port`: the whole answer as text.
fn raw_get(port: u16, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .expect("write");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf
}

#[test]
fn the_port_says_starting_until_the_database_is_open() {
    // A PostgreSQL URL on a port where nothing answers: the server keeps trying to connect
    // (up to 30 s), and meanwhile the port answers at once instead of leaving clients waiting.
    let port = confidant_testkit::process::free_port();
    let nowhere = confidant_testkit::process::free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = confidant_testkit::process::Process::new(BIN)
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--database-url")
        .arg(format!("postgres://postgres@127.0.0.1:{nowhere}/nothing"))
        .env("CONFIDANT_DATA_DIR", dir.path())
        .env(
            "CONFIDANT_ADMIN_TOKEN",
            "cli-test-operator-token-0123456789",
        );
    server.start();
    server.wait_for_port(port, Duration::from_secs(20));
    let health = raw_get(port, "/healthz");
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
    assert!(health.contains(r#""code":"unavailable""#), "{health}");
    assert!(health.contains("starting"), "{health}");
    let live = raw_get(port, "/livez");
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    let api = raw_get(port, "/api/v1/sites/10000");
    assert!(api.starts_with("HTTP/1.1 503"), "{api}");
    assert!(api.to_ascii_lowercase().contains("retry-after: 1"), "{api}");
    assert!(api.contains(r#""code":"unavailable""#), "{api}");
    server.assert_running();
}
