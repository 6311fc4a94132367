//! Live events over the two WebSockets (CONTRACT §7 and the web spec's extra event types):
//! auth, refresh, expiry, logout, isolation, resume, slow consumers, typing and read markers.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly at the first surprise"
)]

use std::time::Duration;

use confidant_testkit::jwt::now;
use confidant_testkit::*;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn conversation_of(message: &Value) -> String {
    message["conversationId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn messages_reach_both_sockets_both_ways() {
    let s = Desk::open().await;
    let (mut contact, ready) = s.mark.socket().await;
    assert!(ready["expiresAt"].as_i64().unwrap() > now());
    let (mut agent, _) = s.agent.socket().await;

    let sent = s.mark.send("c-1", "Hello from the contact").await;
    let conv = conversation_of(&sent);
    for ws in [&mut contact, &mut agent] {
        let m = ws.next_message().await;
        assert_eq!(m, sent, "the pushed message is the stored one");
    }
    let reply = s.agent.send(&conv, "a-1", "Hello from the agent").await;
    for ws in [&mut contact, &mut agent] {
        let m = ws.next_message().await;
        assert_eq!(m, reply);
        assert_eq!(m["sender"]["type"], "agent");
        assert_eq!(m["seq"], 2);
    }

    // Closing pushes the system message and the closed conversation.
    assert_eq!(s.agent.close(&conv).await.0, 200);
    for ws in [&mut contact, &mut agent] {
        let mut saw = (false, false);
        while !(saw.0 && saw.1) {
            let v = ws.next_json().await;
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
        ws.assert_nothing_pending("a socket after the close").await;
    }
}

#[tokio::test]
async fn bystanders_receive_nothing_of_others_messages() {
    let s = Desk::open().await;
    let eve_contact = s.support.contact("eve@example.test").await;
    // The same person through another messenger of the site is another audience too.
    let m2 = s.site.messenger(json!({})).await;
    let mark_through_m2 = m2.contact("mark@example.test").await;
    assert_eq!(
        mark_through_m2.id, s.mark.id,
        "one contact per site and identity"
    );
    let site2 = s.app.site("Other").await;
    let m_site2 = site2.messenger(json!({})).await;
    let agent2 = site2.agent("agent2@example.test", "agent").await;
    let mark_on_site2 = m_site2.contact("mark@example.test").await;

    let (mut mark, _) = s.mark.socket().await;
    let (mut agent, _) = s.agent.socket().await;
    let (mut eve, _) = eve_contact.socket().await;
    let (mut mark_m2, _) = mark_through_m2.socket().await;
    let (mut agent_site2, _) = agent2.socket().await;

    let sent = s.mark.send("c-1", "private").await;
    let conv = conversation_of(&sent);
    s.agent.send(&conv, "a-1", "also private").await;
    let ws_typing = json!({"type": "typing", "conversationId": conv});
    mark.send(ws_typing).await;
    agent
        .send(json!({"type": "read", "conversationId": conv, "seq": 1}))
        .await;
    // The participants get the messages, the typing and the read marker.
    for ws in [&mut mark, &mut agent] {
        let mut got = Vec::new();
        while got.len() < 4 {
            let v = ws.next_json().await;
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
    eve.resume(&conv, 0).await;
    let v = eve.next_json().await;
    assert_eq!(
        (v["type"].as_str(), v["code"].as_str()),
        (Some("error"), Some("not_found")),
        "{v}"
    );
    agent_site2.resume(&conv, 0).await;
    let v = agent_site2.next_json().await;
    assert_eq!(
        (v["type"].as_str(), v["code"].as_str()),
        (Some("error"), Some("not_found")),
        "{v}"
    );
    mark_m2
        .send(json!({"type": "typing", "conversationId": conv}))
        .await;

    // Events reach each socket in the order they were published, so if a bystander's first
    // event is its own later message, it received nothing earlier.
    let own = eve_contact.send("e-1", "eve's own").await;
    assert_eq!(eve.next_message().await, own);
    assert_eq!(
        eve.next_json().await["type"],
        "conversation",
        "the opened conversation follows"
    );
    let own = mark_through_m2.send("m2-1", "other messenger").await;
    assert_eq!(mark_m2.next_message().await, own);
    assert_eq!(
        mark_m2.next_json().await["type"],
        "conversation",
        "the opened conversation follows"
    );
    let own = mark_on_site2.send("s2-1", "other site").await;
    assert_eq!(agent_site2.next_message().await, own);
    assert_eq!(
        agent_site2.next_json().await["type"],
        "conversation",
        "the opened conversation follows"
    );
    // The agent of the site sees both of its site's conversations; mark's socket only his.
    assert_eq!(agent.next_message().await["body"], "eve's own");
    assert_eq!(agent.next_message().await["body"], "other messenger");
    mark.assert_nothing_pending("mark").await;
    eve.assert_nothing_pending("eve").await;
    mark_m2
        .assert_nothing_pending("mark through another messenger")
        .await;
    agent_site2
        .assert_nothing_pending("the other site's agent")
        .await;
}

#[tokio::test]
async fn a_socket_without_an_auth_frame_is_closed_after_10_seconds() {
    let s = Desk::open().await;
    let started = std::time::Instant::now();
    let mut contact = Socket::connect(&s.app.ws_url(CONTACT_WS)).await;
    let mut agent = Socket::connect(&s.app.ws_url(AGENT_WS)).await;
    // Control frames are not an auth frame.
    contact.send_raw(Message::Ping(Default::default())).await;
    assert_eq!(
        contact.expect_close(Duration::from_secs(15)).await,
        Some(4401)
    );
    assert_eq!(agent.expect_close(Duration::from_secs(5)).await, Some(4401));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(9_500) && took < Duration::from_secs(13),
        "{took:?}"
    );
}

#[tokio::test]
async fn bad_auth_frames_close_with_4401() {
    let s = Desk::open().await;
    let cases: Vec<(&str, Value)> = vec![
        (CONTACT_WS, json!({"type": "auth", "token": "garbage"})),
        (CONTACT_WS, json!({"type": "auth", "token": s.agent.token})),
        (CONTACT_WS, json!({"type": "auth"})),
        (CONTACT_WS, json!({"type": "ping"})),
        (AGENT_WS, json!({"type": "auth", "token": s.mark.token})),
        (AGENT_WS, json!({"type": "auth", "token": "garbage"})),
        (AGENT_WS, json!({"type": "auth", "token": OPERATOR})),
    ];
    for (path, frame) in cases {
        let mut ws = Socket::connect(&s.app.ws_url(path)).await;
        ws.send(frame.clone()).await;
        assert_eq!(ws.expect_close(SOON).await, Some(4401), "{path} {frame}");
    }
    let mut ws = Socket::connect(&s.app.ws_url(CONTACT_WS)).await;
    ws.send_raw(Message::Text("not json".into())).await;
    assert_eq!(ws.expect_close(SOON).await, Some(4401));
}

#[tokio::test]
async fn a_fresh_token_for_the_same_contact_keeps_the_socket_going() {
    let s = Desk::open().await;
    s.mark.send("c-0", "opens the conversation").await;
    let (mut ws, _) = s.mark.socket().await;
    let fresh = s.support.contact("mark@example.test").await;
    assert_eq!(fresh.id, s.mark.id);
    // WebSocket-level pings are answered and change nothing.
    ws.send_raw(Message::Ping(b"hi".to_vec().into())).await;
    match ws.next_raw(SOON).await {
        Some(Ok(Message::Pong(p))) => assert_eq!(&p[..], b"hi"),
        other => panic!("expected a pong, got {other:?}"),
    }
    ws.send(json!({"type": "auth", "token": fresh.token})).await;
    assert_eq!(ws.next_json().await["type"], "ready");
    let sent = fresh.send("c-1", "still here").await;
    assert_eq!(ws.next_message().await, sent);

    // Frames the server does not understand are answered with an error; the socket stays.
    ws.send(json!({"type": "dance"})).await;
    assert_eq!(ws.next_json().await["type"], "error");
    ws.send_raw(Message::Text("{".into())).await;
    assert_eq!(ws.next_json().await["type"], "error");
    ws.assert_nothing_pending("the contact").await;

    // A token for someone else ends the socket.
    let eve = s.support.contact("eve@example.test").await;
    ws.send(json!({"type": "auth", "token": eve.token})).await;
    assert_eq!(ws.expect_close(SOON).await, Some(4401));

    // So does a bad token.
    let (mut ws, _) = s.mark.socket().await;
    ws.send(json!({"type": "auth", "token": "garbage"})).await;
    assert_eq!(ws.expect_close(SOON).await, Some(4401));

    // And an agent socket refreshed with another agent's session.
    let (mut ws, _) = s.agent.socket().await;
    let other_agent = s.site.agent("agent-b@example.test", "agent").await;
    ws.send(json!({"type": "auth", "token": other_agent.token}))
        .await;
    assert_eq!(ws.expect_close(SOON).await, Some(4401));
}

#[tokio::test]
async fn a_socket_closes_when_its_token_expires_unless_refreshed() {
    let s = Desk::open().await;
    // Tokens from the server's own key that expire two seconds from now.
    let issued = now() - s.app.server().access_token_ttl() + 2;
    let (short_a, exp) =
        s.app
            .server()
            .sign_access_token(&s.mark.id, s.site.id, &s.support.id, issued);
    let (short_b, _) =
        s.app
            .server()
            .sign_access_token(&s.mark.id, s.site.id, &s.support.id, issued);
    let (mut expiring, ready) = s.app.socket(CONTACT_WS, &short_a).await;
    assert_eq!(ready["expiresAt"].as_i64(), Some(exp));
    let (mut refreshed, _) = s.app.socket(CONTACT_WS, &short_b).await;
    refreshed
        .send(json!({"type": "auth", "token": s.mark.token}))
        .await;
    assert_eq!(refreshed.next_json().await["type"], "ready");

    let started = std::time::Instant::now();
    expiring.send_raw(Message::Ping(Default::default())).await;
    assert_eq!(
        expiring.expect_close(Duration::from_secs(6)).await,
        Some(4401)
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    // The refreshed one lives on past the first token's expiry.
    tokio::time::sleep_until(tokio::time::Instant::from_std(started) + Duration::from_secs(4))
        .await;
    let sent = s.mark.send("c-1", "after expiry").await;
    assert_eq!(refreshed.next_message().await, sent);

    // An expired token is refused outright.
    let (expired, _) = s.app.server().sign_access_token(
        &s.mark.id,
        s.site.id,
        &s.support.id,
        now() - s.app.server().access_token_ttl() - 1,
    );
    let mut ws = Socket::connect(&s.app.ws_url(CONTACT_WS)).await;
    ws.send(json!({"type": "auth", "token": expired})).await;
    assert_eq!(ws.expect_close(SOON).await, Some(4401));
}

#[tokio::test]
async fn logging_out_closes_the_agents_socket() {
    let s = Desk::open().await;
    let (mut ws, _) = s.agent.socket().await;
    // Another session of the same agent is not affected.
    let (mut other, _) = s.site.login("agent@example.test").await.socket().await;

    assert_eq!(s.agent.logout().await, 204);
    assert_eq!(ws.expect_close(SOON).await, Some(4401));
    other.assert_nothing_pending("the other session").await;
    // The ended session cannot open a new socket.
    let mut ws = Socket::connect(&s.app.ws_url(AGENT_WS)).await;
    ws.send(json!({"type": "auth", "token": s.agent.token}))
        .await;
    assert_eq!(ws.expect_close(SOON).await, Some(4401));
}

#[tokio::test]
async fn resume_delivers_exactly_the_missed_messages_in_order() {
    let s = Desk::open().await;
    let (mut ws, _) = s.mark.socket().await;
    let first = s.mark.send("c-1", "1").await;
    let conv = conversation_of(&first);
    s.agent.send(&conv, "a-2", "2").await;
    assert_eq!(ws.next_message().await["seq"], 1);
    assert_eq!(ws.next_message().await["seq"], 2);
    drop(ws);

    // While the contact is away, the agent writes three more.
    for i in 3..=5 {
        s.agent.send(&conv, &format!("a-{i}"), &i.to_string()).await;
    }
    let (mut ws, _) = s.mark.socket().await;
    ws.resume(&conv, 2).await;
    for want in 3..=5 {
        let m = ws.next_message().await;
        assert_eq!(
            (m["seq"].as_i64(), m["body"].as_str()),
            (Some(want), Some(want.to_string().as_str()))
        );
    }
    s.agent.send(&conv, "a-6", "6").await;
    assert_eq!(
        ws.next_message().await["seq"],
        6,
        "live messages follow, once"
    );
    ws.assert_nothing_pending("after resume").await;

    // A live message that arrives before the resume is not sent twice.
    let (mut ws, _) = s.mark.socket().await;
    s.agent.send(&conv, "a-7", "7").await;
    assert_eq!(ws.next_message().await["seq"], 7);
    ws.resume(&conv, 5).await;
    assert_eq!(ws.next_message().await["seq"], 6);
    ws.assert_nothing_pending("after a resume behind a live message")
        .await;
    s.agent.send(&conv, "a-8", "8").await;
    assert_eq!(ws.next_message().await["seq"], 8);

    // A resume from further back than what was sent live sends the rest once, too.
    ws.resume(&conv, 0).await;
    for want in 1..=5 {
        assert_eq!(ws.next_message().await["seq"], want);
    }
    ws.assert_nothing_pending("after a full resume").await;
    // The agent side resumes the same way.
    let (mut agent, _) = s.agent.socket().await;
    agent.resume(&conv, 6).await;
    assert_eq!(agent.next_message().await["seq"], 7);
    assert_eq!(agent.next_message().await["seq"], 8);
    agent.assert_nothing_pending("the agent after resume").await;
}

#[tokio::test]
async fn a_slow_reader_neither_delays_others_nor_silently_misses_messages() {
    const LAST: i64 = 1_300;
    let s = Desk::open().await;
    let first = s.mark.send("c-1", "start").await;
    let conv = conversation_of(&first);

    // The slow agent socket has a tiny receive buffer and stops reading after ready until the
    // sends are done, so the server's writes to it block and its queue (1,024 events)
    // overflows. (Large bodies fill the buffers, then small ones keep the sends quick: a socket
    // whose sends stall for 10 seconds is dropped, CONTRACT §5.)
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let tcp = tcp.connect(s.app.addr).await.unwrap();
    let mut slow = Socket::connect_over(&s.app.ws_url(AGENT_WS), tcp).await;
    slow.auth(&s.agent.token).await;
    let (mut fast, _) = s.agent.socket().await;
    let (all_sent_tx, mut all_sent_rx) = tokio::sync::watch::channel(false);
    let slow_reader = tokio::spawn(async move {
        let mut last = 0;
        let mut resync = false;
        all_sent_rx.changed().await.unwrap();
        while last < LAST {
            let v = match slow.next_within(Duration::from_secs(20)).await {
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
        resync
    });

    // Large bodies (10,000 four-byte characters) so the socket buffers fill quickly.
    let big = "😀".repeat(10_000);
    let reader = tokio::spawn(async move {
        let mut want = 2;
        while want <= LAST {
            let m = fast.next_message().await;
            assert_eq!(
                m["seq"], want,
                "the fast socket gets every message in order"
            );
            want += 1;
        }
        std::time::Instant::now()
    });
    futures_util::stream::iter(2..=LAST)
        .for_each_concurrent(16, |i| {
            let (agent, conv) = (&s.agent, &conv);
            let body = if i <= 160 { big.as_str() } else { "small" };
            async move {
                agent.send(conv, &format!("a-{i}"), body).await;
            }
        })
        .await;
    let all_sent = std::time::Instant::now();
    all_sent_tx.send_replace(true);
    let fast_done = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the fast socket was held up")
        .unwrap();
    assert!(
        fast_done.saturating_duration_since(all_sent) < Duration::from_secs(5),
        "the fast socket lagged behind"
    );

    // The slow one reads at full speed now: it was told to resync, and nothing it got was
    // repeated.
    let resync = tokio::time::timeout(Duration::from_secs(120), slow_reader)
        .await
        .expect("the slow socket never caught up")
        .unwrap();
    assert!(resync, "a slow socket is told to resync");
}

#[tokio::test]
async fn typing_and_read_markers_reach_the_other_side() {
    let s = Desk::open().await;
    let first = s.mark.send("c-1", "hi").await;
    let conv = conversation_of(&first);
    s.agent.send(&conv, "a-2", "hello").await;
    let (mut contact, _) = s.mark.socket().await;
    let (mut agent, _) = s.agent.socket().await;

    contact
        .send(json!({"type": "typing", "conversationId": conv}))
        .await;
    let v = agent.next_json().await;
    assert_eq!(v["type"], "typing", "{v}");
    assert_eq!(v["conversationId"], conv.as_str());
    assert_eq!(
        (v["sender"]["type"].as_str(), v["sender"]["id"].as_str()),
        (Some("contact"), Some(s.mark.id.as_str()))
    );
    assert_eq!(v["sender"]["name"], "mark@example.test");

    agent
        .send(json!({"type": "typing", "conversationId": conv}))
        .await;
    let v = loop {
        let v = contact.next_json().await;
        if v["type"] == "typing" && v["sender"]["type"] == "agent" {
            break v;
        }
    };
    assert_eq!(v["sender"]["name"], "agent@example.test");

    agent
        .send(json!({"type": "read", "conversationId": conv, "seq": 1}))
        .await;
    let v = loop {
        let v = contact.next_json().await;
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
    let mine = s.mark.conversations().await;
    assert_eq!(mine["conversations"][0]["agentReadSeq"], 1);

    // The contact's read marker shows to agents.
    contact
        .send(json!({"type": "read", "conversationId": conv, "seq": 2}))
        .await;
    let v = loop {
        let v = agent.next_json().await;
        if v["type"] == "read" && v["reader"]["type"] == "contact" {
            break v;
        }
    };
    assert_eq!(v["seq"], 2);
    let q = s.agent.conversations("").await;
    assert_eq!(
        (
            q["conversations"][0]["contactReadSeq"].as_i64(),
            q["conversations"][0]["agentReadSeq"].as_i64()
        ),
        (Some(2), Some(1))
    );
}

#[tokio::test]
async fn bad_frames_and_bad_upgrades_get_the_contract_errors() {
    let s = Desk::open().await;
    // A plain GET (no upgrade headers) is a 400 with the JSON body, not plain text.
    for path in ["/api/v1/messenger/ws", "/api/v1/agent/ws"] {
        let r = s.app.get(path, None).await;
        assert_eq!(r.status(), 400, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_request", "{path}");
    }
    let sent = s.mark.send("c-1", "one").await;
    let conv = conversation_of(&sent);
    for (mut ws, who) in [
        (s.mark.socket().await.0, "contact"),
        (s.agent.socket().await.0, "agent"),
    ] {
        // afterSeq out of range, not a whole number, or of the wrong type: an error frame,
        // never a replay from seq 1 — on both sides; so is an unknown frame type.
        for after in [
            "18446744073709551616",
            "1e40",
            "1e308",
            "\"3\"",
            "-1",
            "null",
        ] {
            let frame =
                format!(r#"{{"type":"resume","conversationId":"{conv}","afterSeq":{after}}}"#);
            ws.send_raw(Message::text(frame)).await;
            let v = ws.next_json().await;
            assert_eq!(
                (v["type"].as_str(), v["code"].as_str()),
                (Some("error"), Some("invalid_request")),
                "{who}: afterSeq {after}: {v}"
            );
        }
        ws.send(json!({"type": "dance"})).await;
        let v = ws.next_json().await;
        assert_eq!(v["type"], "error", "{who}: unknown type: {v}");
        // The socket is still usable: a good resume replays the message.
        ws.resume(&conv, 0).await;
        assert_eq!(ws.next_message().await, sent, "{who}");
    }
}
