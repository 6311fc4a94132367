//! Live events over the two WebSockets (CONTRACT §7 and the web spec's extra event types):
//! auth, refresh, expiry, logout, isolation, resume, slow consumers, typing and read markers.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly at the first surprise"
)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const CONTACT_WS: &str = "/api/v1/messenger/ws";
const AGENT_WS: &str = "/api/v1/agent/ws";
/// How long a test waits for something that should come at once.
const SOON: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<TcpStream>;

/// What the server did next on a socket.
#[derive(Debug)]
enum Got {
    Json(Value),
    Closed(Option<u16>),
}

async fn connect(app: &TestApp, path: &str) -> Ws {
    connect_stream(
        app,
        path,
        TcpStream::connect(app.addr).await.expect("tcp connect"),
    )
    .await
}

async fn connect_stream(app: &TestApp, path: &str, tcp: TcpStream) -> Ws {
    let (ws, _) = tokio_tungstenite::client_async(app.ws_url(path), tcp)
        .await
        .expect("websocket handshake");
    ws
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send frame");
}

/// The next JSON frame or the close, skipping control frames; panics after `within`.
async fn next_within(ws: &mut Ws, within: Duration) -> Got {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the server sent nothing in time");
        match frame {
            Some(Ok(Message::Text(t))) => {
                return Got::Json(serde_json::from_str(&t).expect("JSON frame"));
            }
            Some(Ok(Message::Close(c))) => return Got::Closed(c.map(|c| u16::from(c.code))),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Binary(_))) => panic!("binary frame"),
            Some(Err(_)) | None => return Got::Closed(None),
        }
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    match next_within(ws, SOON).await {
        Got::Json(v) => v,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// The next frame that is not a typing/read/conversation event.
async fn next_message(ws: &mut Ws) -> Value {
    loop {
        let v = next_json(ws).await;
        match v["type"].as_str() {
            Some("message") => return v["message"].clone(),
            Some("conversation" | "typing" | "read") => continue,
            _ => panic!("expected a message event, got {v}"),
        }
    }
}

async fn expect_close(ws: &mut Ws, within: Duration) -> Option<u16> {
    loop {
        match next_within(ws, within).await {
            Got::Closed(code) => return code,
            Got::Json(v) => assert_ne!(v["type"], "message", "a message instead of the close: {v}"),
        }
    }
}

/// Connect and authenticate; returns the socket and its ready frame.
async fn open(app: &TestApp, path: &str, token: &str) -> (Ws, Value) {
    let mut ws = connect(app, path).await;
    send(&mut ws, json!({"type": "auth", "token": token})).await;
    let ready = next_json(&mut ws).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    (ws, ready)
}

/// A barrier: everything the server meant to send before answering this ping came first, so
/// if the next frame is the pong, nothing else was pending.
async fn assert_nothing_pending(ws: &mut Ws, who: &str) {
    send(ws, json!({"type": "ping"})).await;
    let v = next_json(ws).await;
    assert_eq!(v["type"], "pong", "{who} got {v}");
}

struct Setup {
    app: TestApp,
    site: i64,
    messenger: String,
    contact: String,
    contact_id: String,
    agent: String,
}

async fn setup() -> Setup {
    let app = TestApp::spawn_with(|a| a.rate_limits = "off".into()).await;
    let (site, messenger) = app.site_with_messenger().await;
    let (contact, contact_id) = authorize(&app, site, &messenger, "mark@example.test").await;
    let agent = app.agent_token(site, "agent@example.test", "agent").await;
    Setup {
        app,
        site,
        messenger,
        contact,
        contact_id,
        agent,
    }
}

async fn authorize(app: &TestApp, site: i64, messenger: &str, identity: &str) -> (String, String) {
    let jwt = hs256(SECRET, &json!({"sub": identity, "exp": now() + 600}));
    let r = app.authorize(site, messenger, &jwt).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    (
        v["accessToken"].as_str().unwrap().to_owned(),
        v["contact"]["contactId"].as_str().unwrap().to_owned(),
    )
}

async fn contact_send(app: &TestApp, token: &str, cmid: &str, body: &str) -> Value {
    let r = app
        .post(
            "/api/v1/messenger/messages",
            Some(token),
            &json!({"clientMessageId": cmid, "body": body}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn agent_send(
    app: &TestApp,
    site: i64,
    token: &str,
    conv: &str,
    cmid: &str,
    body: &str,
) -> Value {
    let r = app
        .post(
            &format!("/api/v1/sites/{site}/conversations/{conv}/messages"),
            Some(token),
            &json!({"clientMessageId": cmid, "body": body}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

#[tokio::test]
async fn messages_reach_both_sockets_both_ways() {
    let s = setup().await;
    let (mut contact, ready) = open(&s.app, CONTACT_WS, &s.contact).await;
    assert!(ready["expiresAt"].as_i64().unwrap() > now());
    let (mut agent, _) = open(&s.app, AGENT_WS, &s.agent).await;

    let sent = contact_send(&s.app, &s.contact, "c-1", "Hello from the contact").await;
    let conv = sent["conversationId"].as_str().unwrap().to_owned();
    for ws in [&mut contact, &mut agent] {
        let m = next_message(ws).await;
        assert_eq!(m, sent, "the pushed message is the stored one");
    }
    let reply = agent_send(
        &s.app,
        s.site,
        &s.agent,
        &conv,
        "a-1",
        "Hello from the agent",
    )
    .await;
    for ws in [&mut contact, &mut agent] {
        let m = next_message(ws).await;
        assert_eq!(m, reply);
        assert_eq!(m["sender"]["type"], "agent");
        assert_eq!(m["seq"], 2);
    }

    // Closing pushes the system message and the closed conversation.
    let r = s
        .app
        .post(
            &format!("/api/v1/sites/{}/conversations/{conv}/close", s.site),
            Some(&s.agent),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    for ws in [&mut contact, &mut agent] {
        let mut saw = (false, false);
        while !(saw.0 && saw.1) {
            let v = next_json(ws).await;
            match v["type"].as_str() {
                Some("message") => {
                    assert_eq!(
                        (
                            v["message"]["seq"].as_i64(),
                            v["message"]["sender"]["type"].as_str()
                        ),
                        (Some(3), Some("system"))
                    );
                    saw.0 = true;
                }
                Some("conversation") => {
                    assert_eq!(
                        (
                            v["conversation"]["conversationId"].as_str(),
                            v["conversation"]["status"].as_str()
                        ),
                        (Some(conv.as_str()), Some("closed"))
                    );
                    saw.1 = true;
                }
                _ => panic!("unexpected {v}"),
            }
        }
        assert_nothing_pending(ws, "a socket after the close").await;
    }
}

#[tokio::test]
async fn bystanders_receive_nothing_of_others_messages() {
    let s = setup().await;
    let (other_contact, _) = authorize(&s.app, s.site, &s.messenger, "eve@example.test").await;
    // The same person through another messenger of the site is another audience too.
    let m2 = s.app.create_messenger(s.site, json!({})).await["messengerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (same_person_m2, same_id) = authorize(&s.app, s.site, &m2, "mark@example.test").await;
    assert_eq!(same_id, s.contact_id, "one contact per site and identity");
    let site2 = s.app.create_site("Other").await;
    let m_site2 = s.app.create_messenger(site2, json!({})).await["messengerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent2 = s
        .app
        .agent_token(site2, "agent2@example.test", "agent")
        .await;
    let (contact_site2, _) = authorize(&s.app, site2, &m_site2, "mark@example.test").await;

    let (mut mark, _) = open(&s.app, CONTACT_WS, &s.contact).await;
    let (mut agent, _) = open(&s.app, AGENT_WS, &s.agent).await;
    let (mut eve, _) = open(&s.app, CONTACT_WS, &other_contact).await;
    let (mut mark_m2, _) = open(&s.app, CONTACT_WS, &same_person_m2).await;
    let (mut agent_site2, _) = open(&s.app, AGENT_WS, &agent2).await;

    let sent = contact_send(&s.app, &s.contact, "c-1", "private").await;
    let conv = sent["conversationId"].as_str().unwrap().to_owned();
    agent_send(&s.app, s.site, &s.agent, &conv, "a-1", "also private").await;
    let ws_typing = json!({"type": "typing", "conversationId": conv});
    send(&mut mark, ws_typing).await;
    send(
        &mut agent,
        json!({"type": "read", "conversationId": conv, "seq": 1}),
    )
    .await;
    // The participants get the messages, the typing and the read marker.
    for ws in [&mut mark, &mut agent] {
        let mut got = Vec::new();
        while got.len() < 4 {
            let v = next_json(ws).await;
            match v["type"].as_str().unwrap() {
                "message" => got.push(format!("message {}", v["message"]["seq"])),
                "typing" | "read" => got.push(v["type"].as_str().unwrap().to_owned()),
                _ => {}
            }
        }
        // The typing and the read marker come from two sockets at once: either may be first.
        got[2..].sort();
        assert_eq!(got, ["message 1", "message 2", "read", "typing"]);
    }
    // Bystanders try to reach in.
    send(
        &mut eve,
        json!({"type": "resume", "conversationId": conv, "afterSeq": 0}),
    )
    .await;
    let v = next_json(&mut eve).await;
    assert_eq!(
        (v["type"].as_str(), v["code"].as_str()),
        (Some("error"), Some("not_found")),
        "{v}"
    );
    send(
        &mut agent_site2,
        json!({"type": "resume", "conversationId": conv, "afterSeq": 0}),
    )
    .await;
    let v = next_json(&mut agent_site2).await;
    assert_eq!(
        (v["type"].as_str(), v["code"].as_str()),
        (Some("error"), Some("not_found")),
        "{v}"
    );
    send(
        &mut mark_m2,
        json!({"type": "typing", "conversationId": conv}),
    )
    .await;

    // Events reach each socket in the order they were published, so if a bystander's first
    // event is its own later message, it received nothing earlier.
    let own = contact_send(&s.app, &other_contact, "e-1", "eve's own").await;
    assert_eq!(next_message(&mut eve).await, own);
    assert_eq!(
        next_json(&mut eve).await["type"],
        "conversation",
        "the opened conversation follows"
    );
    let own = contact_send(&s.app, &same_person_m2, "m2-1", "other messenger").await;
    assert_eq!(next_message(&mut mark_m2).await, own);
    assert_eq!(
        next_json(&mut mark_m2).await["type"],
        "conversation",
        "the opened conversation follows"
    );
    let own = contact_send(&s.app, &contact_site2, "s2-1", "other site").await;
    assert_eq!(next_message(&mut agent_site2).await, own);
    assert_eq!(
        next_json(&mut agent_site2).await["type"],
        "conversation",
        "the opened conversation follows"
    );
    // The agent of the site sees both of its site's conversations; mark's socket only his.
    assert_eq!(next_message(&mut agent).await["body"], "eve's own");
    assert_eq!(next_message(&mut agent).await["body"], "other messenger");
    assert_nothing_pending(&mut mark, "mark").await;
    assert_nothing_pending(&mut eve, "eve").await;
    assert_nothing_pending(&mut mark_m2, "mark through another messenger").await;
    assert_nothing_pending(&mut agent_site2, "the other site's agent").await;
}

#[tokio::test]
async fn a_socket_without_an_auth_frame_is_closed_after_10_seconds() {
    let s = setup().await;
    let started = std::time::Instant::now();
    let mut contact = connect(&s.app, CONTACT_WS).await;
    let mut agent = connect(&s.app, AGENT_WS).await;
    // Control frames are not an auth frame.
    contact
        .send(Message::Ping(Default::default()))
        .await
        .unwrap();
    assert_eq!(
        expect_close(&mut contact, Duration::from_secs(15)).await,
        Some(4401)
    );
    assert_eq!(
        expect_close(&mut agent, Duration::from_secs(5)).await,
        Some(4401)
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(9_500) && took < Duration::from_secs(13),
        "{took:?}"
    );
}

#[tokio::test]
async fn bad_auth_frames_close_with_4401() {
    let s = setup().await;
    let cases: Vec<(&str, Value)> = vec![
        (CONTACT_WS, json!({"type": "auth", "token": "garbage"})),
        (CONTACT_WS, json!({"type": "auth", "token": s.agent})),
        (CONTACT_WS, json!({"type": "auth"})),
        (CONTACT_WS, json!({"type": "ping"})),
        (AGENT_WS, json!({"type": "auth", "token": s.contact})),
        (AGENT_WS, json!({"type": "auth", "token": "garbage"})),
        (AGENT_WS, json!({"type": "auth", "token": OPERATOR})),
    ];
    for (path, frame) in cases {
        let mut ws = connect(&s.app, path).await;
        send(&mut ws, frame.clone()).await;
        assert_eq!(
            expect_close(&mut ws, SOON).await,
            Some(4401),
            "{path} {frame}"
        );
    }
    let mut ws = connect(&s.app, CONTACT_WS).await;
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(expect_close(&mut ws, SOON).await, Some(4401));
}

#[tokio::test]
async fn a_fresh_token_for_the_same_contact_keeps_the_socket_going() {
    let s = setup().await;
    contact_send(&s.app, &s.contact, "c-0", "opens the conversation").await;
    let (mut ws, _) = open(&s.app, CONTACT_WS, &s.contact).await;
    let (fresh, id) = authorize(&s.app, s.site, &s.messenger, "mark@example.test").await;
    assert_eq!(id, s.contact_id);
    // WebSocket-level pings are answered and change nothing.
    ws.send(Message::Ping(b"hi".to_vec().into())).await.unwrap();
    match tokio::time::timeout(SOON, ws.next()).await.expect("pong") {
        Some(Ok(Message::Pong(p))) => assert_eq!(&p[..], b"hi"),
        other => panic!("expected a pong, got {other:?}"),
    }
    send(&mut ws, json!({"type": "auth", "token": fresh})).await;
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    let sent = contact_send(&s.app, &fresh, "c-1", "still here").await;
    assert_eq!(next_message(&mut ws).await, sent);

    // Frames the server does not understand are answered with an error; the socket stays.
    send(&mut ws, json!({"type": "dance"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "error");
    ws.send(Message::Text("{".into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "error");
    assert_nothing_pending(&mut ws, "the contact").await;

    // A token for someone else ends the socket.
    let (eve, _) = authorize(&s.app, s.site, &s.messenger, "eve@example.test").await;
    send(&mut ws, json!({"type": "auth", "token": eve})).await;
    assert_eq!(expect_close(&mut ws, SOON).await, Some(4401));

    // So does a bad token.
    let (mut ws, _) = open(&s.app, CONTACT_WS, &s.contact).await;
    send(&mut ws, json!({"type": "auth", "token": "garbage"})).await;
    assert_eq!(expect_close(&mut ws, SOON).await, Some(4401));

    // And an agent socket refreshed with another agent's session.
    let (mut ws, _) = open(&s.app, AGENT_WS, &s.agent).await;
    let other_agent = s
        .app
        .agent_token(s.site, "agent-b@example.test", "agent")
        .await;
    send(&mut ws, json!({"type": "auth", "token": other_agent})).await;
    assert_eq!(expect_close(&mut ws, SOON).await, Some(4401));
}

#[tokio::test]
async fn a_socket_closes_when_its_token_expires_unless_refreshed() {
    let s = setup().await;
    let access = &s.app.running.as_ref().unwrap().app.access;
    // Tokens from the server's own key that expire two seconds from now.
    let issued = now() - access.ttl_seconds() + 2;
    let (short_a, claims) = access.sign(&s.contact_id, s.site, &s.messenger, false, issued);
    let (short_b, _) = access.sign(&s.contact_id, s.site, &s.messenger, false, issued);
    let (mut expiring, ready) = open(&s.app, CONTACT_WS, &short_a).await;
    assert_eq!(ready["expiresAt"].as_i64(), Some(claims.exp));
    let (mut refreshed, _) = open(&s.app, CONTACT_WS, &short_b).await;
    send(&mut refreshed, json!({"type": "auth", "token": s.contact})).await;
    assert_eq!(next_json(&mut refreshed).await["type"], "ready");

    let started = std::time::Instant::now();
    expiring
        .send(Message::Ping(Default::default()))
        .await
        .unwrap();
    assert_eq!(
        expect_close(&mut expiring, Duration::from_secs(6)).await,
        Some(4401)
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    // The refreshed one lives on past the first token's expiry.
    tokio::time::sleep_until(tokio::time::Instant::from_std(started) + Duration::from_secs(4))
        .await;
    let sent = contact_send(&s.app, &s.contact, "c-1", "after expiry").await;
    assert_eq!(next_message(&mut refreshed).await, sent);

    // An expired token is refused outright.
    let (expired, _) = access.sign(
        &s.contact_id,
        s.site,
        &s.messenger,
        false,
        now() - access.ttl_seconds() - 1,
    );
    let mut ws = connect(&s.app, CONTACT_WS).await;
    send(&mut ws, json!({"type": "auth", "token": expired})).await;
    assert_eq!(expect_close(&mut ws, SOON).await, Some(4401));
}

#[tokio::test]
async fn logging_out_closes_the_agents_socket() {
    let s = setup().await;
    let (mut ws, _) = open(&s.app, AGENT_WS, &s.agent).await;
    // Another session of the same agent is not affected.
    let r = s.app.post("/api/v1/auth/login", None, &json!({"siteId": s.site, "email": "agent@example.test", "password": "correct horse battery"})).await;
    let second: Value = r.json().await.unwrap();
    let (mut other, _) = open(&s.app, AGENT_WS, second["token"].as_str().unwrap()).await;

    let r = s
        .app
        .post("/api/v1/auth/logout", Some(&s.agent), &json!({}))
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(expect_close(&mut ws, SOON).await, Some(4401));
    assert_nothing_pending(&mut other, "the other session").await;
    // The ended session cannot open a new socket.
    let mut ws = connect(&s.app, AGENT_WS).await;
    send(&mut ws, json!({"type": "auth", "token": s.agent})).await;
    assert_eq!(expect_close(&mut ws, SOON).await, Some(4401));
}

#[tokio::test]
async fn resume_delivers_exactly_the_missed_messages_in_order() {
    let s = setup().await;
    let (mut ws, _) = open(&s.app, CONTACT_WS, &s.contact).await;
    let first = contact_send(&s.app, &s.contact, "c-1", "1").await;
    let conv = first["conversationId"].as_str().unwrap().to_owned();
    agent_send(&s.app, s.site, &s.agent, &conv, "a-2", "2").await;
    assert_eq!(next_message(&mut ws).await["seq"], 1);
    assert_eq!(next_message(&mut ws).await["seq"], 2);
    drop(ws);

    // While the contact is away, the agent writes three more.
    for i in 3..=5 {
        agent_send(
            &s.app,
            s.site,
            &s.agent,
            &conv,
            &format!("a-{i}"),
            &i.to_string(),
        )
        .await;
    }
    let (mut ws, _) = open(&s.app, CONTACT_WS, &s.contact).await;
    send(
        &mut ws,
        json!({"type": "resume", "conversationId": conv, "afterSeq": 2}),
    )
    .await;
    for want in 3..=5 {
        let m = next_message(&mut ws).await;
        assert_eq!(
            (m["seq"].as_i64(), m["body"].as_str()),
            (Some(want), Some(want.to_string().as_str()))
        );
    }
    agent_send(&s.app, s.site, &s.agent, &conv, "a-6", "6").await;
    assert_eq!(
        next_message(&mut ws).await["seq"],
        6,
        "live messages follow, once"
    );
    assert_nothing_pending(&mut ws, "after resume").await;

    // A live message that arrives before the resume is not sent twice.
    let (mut ws, _) = open(&s.app, CONTACT_WS, &s.contact).await;
    agent_send(&s.app, s.site, &s.agent, &conv, "a-7", "7").await;
    assert_eq!(next_message(&mut ws).await["seq"], 7);
    send(
        &mut ws,
        json!({"type": "resume", "conversationId": conv, "afterSeq": 5}),
    )
    .await;
    assert_eq!(next_message(&mut ws).await["seq"], 6);
    assert_nothing_pending(&mut ws, "after a resume behind a live message").await;
    agent_send(&s.app, s.site, &s.agent, &conv, "a-8", "8").await;
    assert_eq!(next_message(&mut ws).await["seq"], 8);

    // A resume from further back than what was sent live sends the rest once, too.
    send(
        &mut ws,
        json!({"type": "resume", "conversationId": conv, "afterSeq": 0}),
    )
    .await;
    for want in 1..=5 {
        assert_eq!(next_message(&mut ws).await["seq"], want);
    }
    assert_nothing_pending(&mut ws, "after a full resume").await;
    // The agent side resumes the same way.
    let (mut agent, _) = open(&s.app, AGENT_WS, &s.agent).await;
    send(
        &mut agent,
        json!({"type": "resume", "conversationId": conv, "afterSeq": 6}),
    )
    .await;
    assert_eq!(next_message(&mut agent).await["seq"], 7);
    assert_eq!(next_message(&mut agent).await["seq"], 8);
    assert_nothing_pending(&mut agent, "the agent after resume").await;
}

#[tokio::test]
async fn a_slow_reader_neither_delays_others_nor_silently_misses_messages() {
    let s = setup().await;
    let first = contact_send(&s.app, &s.contact, "c-1", "start").await;
    let conv = first["conversationId"].as_str().unwrap().to_owned();

    // The slow agent socket has a tiny receive buffer and stops reading after ready, so the
    // server's writes to it block and its queue (1,024 events) overflows.
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let tcp = tcp.connect(s.app.addr).await.unwrap();
    let mut slow = connect_stream(&s.app, AGENT_WS, tcp).await;
    send(&mut slow, json!({"type": "auth", "token": s.agent})).await;
    assert_eq!(next_json(&mut slow).await["type"], "ready");
    let (mut fast, _) = open(&s.app, AGENT_WS, &s.agent).await;

    // Large bodies (10,000 four-byte characters) so the socket buffers fill quickly.
    const LAST: i64 = 1_300;
    let body = "😀".repeat(10_000);
    let reader = tokio::spawn(async move {
        let mut want = 2;
        while want <= LAST {
            let m = next_message(&mut fast).await;
            assert_eq!(
                m["seq"], want,
                "the fast socket gets every message in order"
            );
            want += 1;
        }
        std::time::Instant::now()
    });
    let (app, site, agent) = (&s.app, s.site, &s.agent);
    futures_util::stream::iter(2..=LAST)
        .for_each_concurrent(16, |i| {
            let (conv, body) = (&conv, &body);
            async move {
                agent_send(app, site, agent, conv, &format!("a-{i}"), body).await;
            }
        })
        .await;
    let all_sent = std::time::Instant::now();
    let fast_done = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the fast socket was held up")
        .unwrap();
    assert!(
        fast_done.saturating_duration_since(all_sent) < Duration::from_secs(5),
        "the fast socket lagged behind"
    );

    // The slow one reads again: it is told to resync, and nothing it gets is repeated.
    let mut last = 0;
    let mut resync = false;
    while last < LAST {
        let v = match next_within(&mut slow, Duration::from_secs(20)).await {
            Got::Json(v) => v,
            Got::Closed(c) => panic!("the slow socket was closed ({c:?})"),
        };
        match v["type"].as_str() {
            Some("resync") => resync = true,
            Some("message") => {
                let seq = v["message"]["seq"].as_i64().unwrap();
                assert!(seq > last, "seq {seq} after {last}");
                last = seq;
            }
            _ => {}
        }
    }
    assert!(resync, "a slow socket is told to resync");
}

#[tokio::test]
async fn typing_and_read_markers_reach_the_other_side() {
    let s = setup().await;
    let first = contact_send(&s.app, &s.contact, "c-1", "hi").await;
    let conv = first["conversationId"].as_str().unwrap().to_owned();
    agent_send(&s.app, s.site, &s.agent, &conv, "a-2", "hello").await;
    let (mut contact, _) = open(&s.app, CONTACT_WS, &s.contact).await;
    let (mut agent, _) = open(&s.app, AGENT_WS, &s.agent).await;

    send(
        &mut contact,
        json!({"type": "typing", "conversationId": conv}),
    )
    .await;
    let v = next_json(&mut agent).await;
    assert_eq!(v["type"], "typing", "{v}");
    assert_eq!(v["conversationId"], conv.as_str());
    assert_eq!(
        (v["sender"]["type"].as_str(), v["sender"]["id"].as_str()),
        (Some("contact"), Some(s.contact_id.as_str()))
    );
    assert_eq!(v["sender"]["name"], "mark@example.test");

    send(
        &mut agent,
        json!({"type": "typing", "conversationId": conv}),
    )
    .await;
    let v = loop {
        let v = next_json(&mut contact).await;
        if v["type"] == "typing" && v["sender"]["type"] == "agent" {
            break v;
        }
    };
    assert_eq!(v["sender"]["name"], "agent@example.test");

    send(
        &mut agent,
        json!({"type": "read", "conversationId": conv, "seq": 1}),
    )
    .await;
    let v = loop {
        let v = next_json(&mut contact).await;
        if v["type"] == "read" {
            break v;
        }
        assert_eq!(v["type"], "typing", "{v}");
    };
    assert_eq!(
        (
            v["conversationId"].as_str(),
            v["reader"]["type"].as_str(),
            v["seq"].as_i64()
        ),
        (Some(conv.as_str()), Some("agent"), Some(1))
    );
    let r = s
        .app
        .get("/api/v1/messenger/conversations", Some(&s.contact))
        .await;
    let mine: Value = r.json().await.unwrap();
    assert_eq!(mine["conversations"][0]["agentReadSeq"], 1);

    // The contact's read marker shows to agents.
    send(
        &mut contact,
        json!({"type": "read", "conversationId": conv, "seq": 2}),
    )
    .await;
    let v = loop {
        let v = next_json(&mut agent).await;
        if v["type"] == "read" && v["reader"]["type"] == "contact" {
            break v;
        }
    };
    assert_eq!(v["seq"], 2);
    let r = s
        .app
        .get(
            &format!("/api/v1/sites/{}/conversations", s.site),
            Some(&s.agent),
        )
        .await;
    let q: Value = r.json().await.unwrap();
    assert_eq!(
        (
            q["conversations"][0]["contactReadSeq"].as_i64(),
            q["conversations"][0]["agentReadSeq"].as_i64()
        ),
        (Some(2), Some(1))
    );
}
