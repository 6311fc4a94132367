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

#[tokio::test]
async fn every_answer_carries_its_own_request_id_and_echoes_a_given_one() {
    let app = TestApp::spawn().await;
    let id = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let a = id(&app.get("/livez", None).await).expect("a request id");
    let b = id(&app.get("/livez", None).await).expect("a request id");
    assert_ne!(a, b);
    let r = app
        .client
        .get(app.url("/livez"))
        .header("x-request-id", "from-the-balancer-1")
        .send()
        .await
        .unwrap();
    assert_eq!(id(&r).as_deref(), Some("from-the-balancer-1"));
}
