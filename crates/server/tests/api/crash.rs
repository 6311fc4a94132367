//! A send acknowledged with 201 survives `kill -9` of the real binary (CONTRACT §7: "a send is
//! acknowledged only after the message is durably stored").

use confidant_testkit::*;
use serde_json::json;

#[tokio::test]
async fn an_acknowledged_send_survives_kill_9() {
    // A fresh database on the configured backend; the in-process server that made it stops,
    // and the real binary takes over.
    let mut made_the_db = TestApp::spawn().await;
    made_the_db.stop().await;
    let mut server = ServerProcess::start(
        crate::BIN,
        &made_the_db.database_url,
        &["--master-key-file", &made_the_db.master_key_file],
    )
    .await;

    let site = server.site("Acme").await;
    let mark = site
        .messenger(json!({}))
        .await
        .contact("mark@example.test")
        .await;
    let sent = mark.send("c-1", "do not lose me").await;
    assert_eq!(sent["seq"], 1);

    // SIGKILL right after the acknowledgement: no graceful shutdown, no flush on exit.
    server.kill_9();
    server.restart().await;

    let conv = sent["conversationId"].as_str().unwrap();
    // The access token still verifies (the signing key was stored too).
    assert_eq!(
        json!(mark.messages(conv, "").await),
        json!([sent]),
        "the acknowledged message is there, with its seq"
    );
    let second = mark.send("c-2", "and me").await;
    assert_eq!(
        (second["conversationId"].as_str(), second["seq"].as_i64()),
        (Some(conv), Some(2))
    );
    // A retry of the first send after the crash is still recognised.
    let (status, _) = mark.try_send("c-1", "do not lose me").await;
    assert_eq!(status, 200);
}
