mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn contact_and_agent_talk_over_rest() {
    let app = TestApp::spawn().await;
    let (site, messenger) = app.site_with_messenger().await;
    let at = app
        .access_token(site, &messenger, "mark@example.test")
        .await;
    let r = app
        .post(
            "/api/v1/messenger/messages",
            Some(&at),
            &json!({"clientMessageId": "c1", "body": "hi"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let m: serde_json::Value = r.json().await.unwrap();
    let conv = m["conversationId"].as_str().unwrap().to_owned();
    let agent = app.agent_token(site, "a@example.test", "agent").await;
    let r = app
        .post(
            &format!("/api/v1/sites/{site}/conversations/{conv}/messages"),
            Some(&agent),
            &json!({"clientMessageId": "a1", "body": "hello back"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .get(
            &format!("/api/v1/messenger/conversations/{conv}/messages"),
            Some(&at),
        )
        .await;
    let msgs: serde_json::Value = r.json().await.unwrap();
    let seqs: Vec<i64> = msgs["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(msgs["messages"][1]["sender"]["type"], "agent");
}
