//! A send acknowledged with 201 survives `kill -9` of the real binary (CONTRACT §7: "a send is
//! acknowledged only after the message is durably stored").

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly at the first surprise"
)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A server process that is killed if the test fails half-way.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real `confidant serve` on `port`, on `database_url`.
fn serve(port: u16, database_url: &str, data_dir: &std::path::Path) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_confidant"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            database_url,
        ])
        .env("CONFIDANT_ADMIN_TOKEN", OPERATOR)
        .env("CONFIDANT_DATA_DIR", data_dir)
        .env("CONFIDANT_RATE_LIMITS", "off")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the binary");
    Server(child)
}

async fn wait_ready(client: &reqwest::Client, base: &str, server: &mut Server) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("the server exited: {status}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn an_acknowledged_send_survives_kill_9() {
    // A fresh database on the configured backend; the in-process server that made it stops,
    // and the real binary takes over.
    let mut test_app = TestApp::spawn().await;
    test_app.running.take().unwrap().stop().await.unwrap();
    let database_url = test_app.database_url.clone();
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let mut child = serve(port, &database_url, data_dir.path());
    wait_ready(&client, &base, &mut child).await;
    let post = |path: &str, token: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let r = post("/api/v1/sites", OPERATOR, json!({"name": "Acme"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let site = r.json::<Value>().await.unwrap()["siteId"].as_i64().unwrap();
    let sec = json!({"validation": {"method": "sharedToken", "sharedToken": SECRET}, "allowedUrls": [base]});
    let r = post(
        &format!("/api/v1/sites/{site}/messengers"),
        OPERATOR,
        json!({"name": "Support", "security": sec}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let messenger = r.json::<Value>().await.unwrap()["messengerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let jwt = hs256(
        SECRET,
        &json!({"sub": "mark@example.test", "exp": now() + 600}),
    );
    let r = client
        .post(format!("{base}/securemessage/authorize"))
        .json(&json!({"siteId": site, "messengerId": messenger, "contactJwt": jwt}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = post(
        "/api/v1/messenger/messages",
        &token,
        json!({"clientMessageId": "c-1", "body": "do not lose me"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let sent: Value = r.json().await.unwrap();
    assert_eq!(sent["seq"], 1);

    // SIGKILL right after the acknowledgement: no graceful shutdown, no flush on exit.
    child.0.kill().unwrap();
    child.0.wait().unwrap();

    let mut child = serve(port, &database_url, data_dir.path());
    wait_ready(&client, &base, &mut child).await;
    let conv = sent["conversationId"].as_str().unwrap();
    // The access token still verifies (the signing key was stored too).
    let r = client
        .get(format!(
            "{base}/api/v1/messenger/conversations/{conv}/messages"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let msgs: Value = r.json().await.unwrap();
    assert_eq!(
        msgs["messages"],
        json!([sent]),
        "the acknowledged message is there, with its seq"
    );

    let r = post(
        "/api/v1/messenger/messages",
        &token,
        json!({"clientMessageId": "c-2", "body": "and me"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let second: Value = r.json().await.unwrap();
    assert_eq!(
        (second["conversationId"].as_str(), second["seq"].as_i64()),
        (Some(conv), Some(2))
    );
    // A retry of the first send after the crash is still recognised.
    let r = post(
        "/api/v1/messenger/messages",
        &token,
        json!({"clientMessageId": "c-1", "body": "do not lose me"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
}
