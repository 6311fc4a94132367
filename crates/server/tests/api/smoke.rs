//! The shortest round trips: a contact and an agent talk over REST; request ids.

use confidant_testkit::*;
use serde_json::json;

#[tokio::test]
async fn contact_and_agent_talk_over_rest() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let mark = site
        .messenger(json!({}))
        .await
        .contact("mark@example.test")
        .await;
    let sent = mark.send("c1", "hi").await;
    let conv = sent["conversationId"].as_str().unwrap();
    let agent = site.agent("a@example.test", "agent").await;
    agent.send(conv, "a1", "hello back").await;
    let msgs = mark.messages(conv, "").await;
    assert_eq!(seqs(&msgs), vec![1, 2]);
    assert_eq!(msgs[1]["sender"]["type"], "agent");
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
