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
