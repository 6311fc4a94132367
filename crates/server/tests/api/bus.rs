//! Credentials on the bus (CONTRACT §2 `--bus-url`, docs/SCALING.md): a NATS server that asks
//! for a user and password, or a token, is reached with the ones in the URL; a wrong password
//! ends the binary with one line that never shows it, and no log line shows it either.

use std::process::{Command, Stdio};

use confidant_testkit::*;
use serde_json::Value;

use confidant_testkit::process::nats_installed;

use crate::BIN;

const USER: &str = "confidant";
const PASSWORD: &str = "bus-pass-7f3a9c1e5b";
const TOKEN: &str = "bus-token-2d8e6a4c0f";

/// `confidant serve` with `--bus-url url`: its exit code and everything it printed.
fn serve_with_bus(url: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--bus-url", url])
        .env_remove("CONFIDANT_DATABASE_URL")
        .env_remove("CONFIDANT_BUS_URL")
        .env_remove("CONFIDANT_BUS_CREDS_FILE")
        .env("CONFIDANT_DATA_DIR", dir.path())
        .env(
            "CONFIDANT_ADMIN_TOKEN",
            "bus-test-operator-token-0123456789",
        )
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn bus_state(app: &TestApp) -> Value {
    app.get("/healthz", None)
        .await
        .json::<Value>()
        .await
        .expect("json")["bus"]
        .clone()
}

#[tokio::test]
async fn a_bus_with_a_password_is_reached_with_the_urls_credentials() {
    if !nats_installed("a_bus_with_a_password_is_reached_with_the_urls_credentials") {
        return;
    }
    let nats = Nats::start_with(&["--user", USER, "--pass", PASSWORD]);
    let url = format!("nats://{USER}:{PASSWORD}@127.0.0.1:{}", nats.port);
    let app = TestApp::spawn_with(|s| s.bus_url = Some(url)).await;
    assert_eq!(bus_state(&app).await, "connected");
}

#[test]
fn a_wrong_bus_password_is_one_line_that_never_shows_it() {
    if !nats_installed("a_wrong_bus_password_is_one_line_that_never_shows_it") {
        return;
    }
    let nats = Nats::start_with(&["--user", USER, "--pass", PASSWORD]);
    let wrong = "wrong-pass-91b4d2e7";
    for url in [
        format!("nats://{USER}:{wrong}@127.0.0.1:{}", nats.port),
        // No credentials at all: the server refuses too.
        format!("nats://127.0.0.1:{}", nats.port),
    ] {
        let (code, stdout, stderr) = serve_with_bus(&url);
        assert!(code.is_some_and(|c| c != 0), "{url}: exited with {code:?}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{url} should say one line, said: {stderr}");
        assert!(lines[0].contains("bus"), "{stderr}");
        for printed in [&stdout, &stderr] {
            assert!(
                !printed.contains(wrong),
                "the password was printed: {printed}"
            );
        }
    }
}

#[tokio::test]
async fn a_bus_with_a_token_is_reached_with_the_urls_token() {
    if !nats_installed("a_bus_with_a_token_is_reached_with_the_urls_token") {
        return;
    }
    let nats = Nats::start_with(&["--auth", TOKEN]);
    let url = format!("nats://{TOKEN}@127.0.0.1:{}", nats.port);
    let app = TestApp::spawn_with(|s| s.bus_url = Some(url)).await;
    assert_eq!(bus_state(&app).await, "connected");
    let (code, stdout, stderr) =
        serve_with_bus(&format!("nats://not-the-token@127.0.0.1:{}", nats.port));
    assert!(code.is_some_and(|c| c != 0), "{stderr}");
    assert!(
        !stdout.contains("not-the-token") && !stderr.contains("not-the-token"),
        "{stderr}"
    );
}
