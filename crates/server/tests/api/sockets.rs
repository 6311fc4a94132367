//! Live sockets from the attacker's side (issue 11, findings 1, 8 and 9): a logout reaches an
//! agent socket whose client stopped reading, a stalled socket is dropped, an oversized frame
//! is closed with 1009, the caps on open sockets, and the single-use socket ticket.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly at the first surprise"
)]

use std::time::Duration;

use confidant_testkit::*;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// 10,000 four-byte characters: the largest body, 40 KB on the wire.
fn big_body() -> String {
    "😀".repeat(10_000)
}

/// A socket whose client stops reading at once: a tiny receive buffer, so the server's
/// writes to it block after a few frames. Returns it authenticated.
async fn stalled_socket(app: &Http, path: &str, token: &str) -> Socket {
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let tcp = tcp.connect(app.addr).await.unwrap();
    let mut ws = Socket::connect_over(&app.ws_url(path), tcp).await;
    ws.auth(token).await;
    ws
}

/// Wait (at most `within`) until the server holds no open socket.
async fn until_no_socket_is_open(app: &TestApp, within: Duration) -> Result<(), usize> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let open = app.server().open_sockets();
        if open == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(open);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Read what the client's buffers hold, until the connection ends: every message body.
/// Panics if the connection does not end within `within`.
async fn drain(ws: Socket, within: Duration) -> Vec<String> {
    let mut ws = ws.into_inner();
    let mut bodies = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the connection did not end");
        match frame {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "message" {
                    bodies.push(v["message"]["body"].as_str().unwrap().to_owned());
                }
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => return bodies,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn logout_closes_an_agent_socket_whose_client_stopped_reading() {
    let s = Desk::open().await;
    s.mark.send("c-0", "start").await;
    let slow = stalled_socket(&s.app, AGENT_WS, &s.agent.token).await;

    // The repro: 180 × 40 KB contact messages fill the kernel buffers; the socket's task is
    // stuck in a send.
    let body = big_body();
    for i in 1..=180 {
        s.mark.send(&format!("c-{i}"), &body).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.agent.logout().await, 204);
    // Many process-wide notices after the logout (they once crowded the session end out).
    for i in 0..300 {
        let r = s
            .app
            .put(
                &format!(
                    "/api/v1/sites/{}/messengers/{}/security",
                    s.site.id, s.support.id
                ),
                Some(OPERATOR),
                &json!({"validation": {"method": "sharedToken", "sharedToken": format!("{SECRET}-{i}")}}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    s.mark.send("after", "sent after the logout").await;

    // The server lets go of the socket though its client never reads…
    until_no_socket_is_open(&s.app, Duration::from_secs(5))
        .await
        .expect("the stalled agent socket is still open after the logout");
    // …and what the client finds in its buffers never includes the message after the logout.
    let bodies = drain(slow, Duration::from_secs(30)).await;
    assert!(
        !bodies.iter().any(|b| b == "sent after the logout"),
        "a message sent after the logout reached the socket"
    );
}

#[tokio::test]
async fn a_socket_whose_client_stopped_reading_is_dropped_after_10_seconds() {
    let s = Desk::open().await;
    s.mark.send("c-0", "start").await;
    let _slow = stalled_socket(&s.app, CONTACT_WS, &s.mark.token).await;
    let body = big_body();
    for i in 1..=180 {
        s.mark.send(&format!("c-{i}"), &body).await;
    }
    // Sends to it block from here on; after 10 s of a blocked send the server drops it.
    until_no_socket_is_open(&s.app, Duration::from_secs(40))
        .await
        .expect("a socket that takes no pushes is never dropped");
    // Others are unaffected.
    let (mut ws, _) = s.mark.socket().await;
    ws.assert_nothing_pending("a new socket").await;
}

/// A frame over the limit (1 MiB), before and after auth, on both sockets: close 1009.
#[tokio::test]
async fn an_oversized_frame_is_closed_with_1009() {
    let s = Desk::open().await;
    let huge = format!(r#"{{"type":"auth","token":"{}"}}"#, "x".repeat(1024 * 1024));
    for (path, token) in [(CONTACT_WS, &s.mark.token), (AGENT_WS, &s.agent.token)] {
        for authed in [false, true] {
            let mut ws = Socket::connect(&s.app.ws_url(path)).await;
            if authed {
                ws.auth(token).await;
            }
            let (mut tx, mut rx) = ws.into_inner().split();
            // Written beside the reads: the server stops reading the frame at its header.
            let writer = {
                let huge = huge.clone();
                tokio::spawn(async move {
                    let _ = tx.send(Message::text(huge)).await;
                    tx
                })
            };
            let code = loop {
                match tokio::time::timeout(SOON, rx.next()).await.unwrap() {
                    Some(Ok(Message::Close(c))) => break c.map(|c: CloseFrame| u16::from(c.code)),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => panic!("{path} authed={authed}: no close frame, {e}"),
                    None => panic!("{path} authed={authed}: no close frame"),
                }
            };
            assert_eq!(code, Some(1009), "{path} authed={authed}");
            writer.abort();
        }
    }
    // A frame just under the limit is still read (and refused as a bad token).
    let mut ws = Socket::connect(&s.app.ws_url(AGENT_WS)).await;
    ws.send(json!({"type": "auth", "token": "x".repeat(60 * 1024)}))
        .await;
    assert_eq!(ws.expect_close(SOON).await, Some(4401));
}

#[tokio::test]
async fn one_contact_or_one_session_holds_at_most_20_sockets() {
    let s = Desk::open().await;
    for (path, token) in [(CONTACT_WS, &s.mark.token), (AGENT_WS, &s.agent.token)] {
        let mut held = Vec::new();
        for _ in 0..20 {
            held.push(Socket::open(&s.app.ws_url(path), token).await.0);
        }
        let mut ws = Socket::connect(&s.app.ws_url(path)).await;
        ws.send(json!({"type": "auth", "token": token})).await;
        assert_eq!(ws.expect_close(SOON).await, Some(4429), "{path}");
        // One closes: there is room again.
        drop(held.pop());
        let mut ws = loop {
            let mut ws = Socket::connect(&s.app.ws_url(path)).await;
            ws.send(json!({"type": "auth", "token": token})).await;
            match ws.next_within(SOON).await {
                Got::Json(v) if v["type"] == "ready" => break ws,
                // The dropped socket's task may not have ended yet.
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        ws.assert_nothing_pending(path).await;
    }
    // Another contact, or another session of the same agent, has its own 20.
    let (mut other, _) = s.support.contact("other@example.test").await.socket().await;
    other.assert_nothing_pending("another contact").await;
    let (mut again, _) = s.site.login("agent@example.test").await.socket().await;
    again.assert_nothing_pending("another session").await;
}

#[tokio::test]
async fn one_address_opens_at_most_500_sockets_unless_rate_limits_are_off() {
    let app = TestApp::spawn().await;
    let mut held = Vec::new();
    for _ in 0..500 {
        held.push(Socket::connect(&app.ws_url(CONTACT_WS)).await);
    }
    let r = app.get(CONTACT_WS, None).await;
    // Not an upgrade request, but the cap answers first… or not: use a real upgrade below.
    drop(r);
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let r = reqwest::Client::new()
        .get(app.url(AGENT_WS))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", key)
        .send()
        .await
        .unwrap();
    let retry = r.headers().get("retry-after").cloned();
    let (status, code) = error_code(r).await;
    assert_eq!((status, code.as_str()), (429, "rate_limited"));
    assert!(retry.is_some(), "429 without Retry-After");
    drop(held);

    // `--rate-limits off` lifts it (load tests open many sockets from one address).
    let off = TestApp::spawn_with(|s| s.rate_limits = false).await;
    let mut held = Vec::new();
    for _ in 0..501 {
        held.push(Socket::connect(&off.ws_url(CONTACT_WS)).await);
    }
    assert_eq!(off.server().open_sockets(), 501);
}

/// POST /api/v1/auth/ws-ticket with the session (bearer or cookie): the ticket.
async fn ticket(agent: &Agent) -> (u16, Value) {
    json_of(
        agent
            .http
            .post("/api/v1/auth/ws-ticket", Some(&agent.token), &json!({}))
            .await,
    )
    .await
}

#[tokio::test]
async fn auth_me_never_shows_the_session_token_and_a_socket_ticket_works_once() {
    let s = Desk::open().await;
    let (status, me) = json_of(s.app.get("/api/v1/auth/me", Some(&s.agent.token)).await).await;
    assert_eq!(status, 200);
    assert!(me.get("wsToken").is_none(), "{me}");
    assert!(!me.to_string().contains(&s.agent.token), "{me}");

    let (status, t) = ticket(&s.agent).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["expiresIn"], 60);
    let t = t["ticket"].as_str().unwrap().to_owned();
    assert!(!t.contains(&s.agent.token));
    // The ticket opens the agent socket once, as the agent.
    let (mut ws, _) = Socket::open(&s.app.ws_url(AGENT_WS), &t).await;
    let sent = s.mark.send("c-1", "hello").await;
    assert_eq!(ws.next_message().await, sent);
    // A second use is refused; so is a ticket on REST and on the contact socket.
    let mut again = Socket::connect(&s.app.ws_url(AGENT_WS)).await;
    again.send(json!({"type": "auth", "token": t})).await;
    assert_eq!(again.expect_close(SOON).await, Some(4401));
    let (_, t2) = ticket(&s.agent).await;
    let t2 = t2["ticket"].as_str().unwrap().to_owned();
    let r = s.app.get("/api/v1/auth/me", Some(&t2)).await;
    assert_eq!(r.status(), 401);
    let mut contact = Socket::connect(&s.app.ws_url(CONTACT_WS)).await;
    contact.send(json!({"type": "auth", "token": t2})).await;
    assert_eq!(contact.expect_close(SOON).await, Some(4401));

    // The socket a ticket opened belongs to the session: a logout closes it, and kills the
    // tickets not used yet.
    let (_, t3) = ticket(&s.agent).await;
    let t3 = t3["ticket"].as_str().unwrap().to_owned();
    assert_eq!(s.agent.logout().await, 204);
    assert_eq!(ws.expect_close(SOON).await, Some(4401));
    let mut late = Socket::connect(&s.app.ws_url(AGENT_WS)).await;
    late.send(json!({"type": "auth", "token": t3})).await;
    assert_eq!(late.expect_close(SOON).await, Some(4401));
    // Without a session there is no ticket; the operator has none either.
    assert_eq!(ticket(&s.agent).await.0, 401);
    let r = s
        .app
        .post("/api/v1/auth/ws-ticket", Some(OPERATOR), &json!({}))
        .await;
    assert_eq!(error_code(r).await, (403, "forbidden".to_owned()));
}
