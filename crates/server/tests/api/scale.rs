//! Several server processes as one (the scale-out issue): two servers on one PostgreSQL
//! database and one NATS bus. These run in the PostgreSQL pass of the suite
//! (`CONFIDANT_TEST_BACKEND=postgres`); each test starts its own nats-server on a free port so
//! that it can stop and restart the bus.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use confidant_testkit::jwt::*;
use confidant_testkit::ws::seq_body;
use confidant_testkit::*;
use serde_json::{Value, json};

/// Whether this pass runs the multi-process tests; says so loudly when it does not.
fn enabled(test: &str) -> bool {
    if backend() != "postgres" {
        eprintln!("{test}: runs in the PostgreSQL pass (CONFIDANT_TEST_BACKEND=postgres)");
        return false;
    }
    process::nats_installed(test)
}

async fn two_nodes(nats: &Nats) -> (TestApp, TestApp) {
    TestApp::two_nodes(nats).await
}

/// The next `message` event's (seq, body), skipping other event types.
async fn next_message(ws: &mut Socket) -> (i64, String) {
    seq_body(&ws.next_of_type("message").await["message"])
}

#[tokio::test]
async fn a_contact_on_node_a_and_an_agent_on_node_b_talk_live_both_ways() {
    if !enabled("a_contact_on_node_a_and_an_agent_on_node_b_talk_live_both_ways") {
        return;
    }
    let nats = Nats::start();
    let (a, b) = two_nodes(&nats).await;
    let (site, messenger) = a.site_with_messenger().await;
    let mark = a
        .messenger_of(site, &messenger)
        .contact("mark@example.test")
        .await;
    let agent = b.site_of(site).agent("agent@example.test", "agent").await;
    let (mut contact_ws, _) = mark.socket().await;
    let (mut agent_ws, _) = agent.socket().await;

    let sent = mark.send("c1", "from A").await;
    let conv = sent["conversationId"].as_str().expect("id");
    assert_eq!(next_message(&mut agent_ws).await, (1, "from A".to_owned()));

    agent.send(conv, "a1", "from B").await;
    assert_eq!(next_message(&mut contact_ws).await.1, "from A");
    assert_eq!(
        next_message(&mut contact_ws).await,
        (2, "from B".to_owned())
    );
}

#[tokio::test]
async fn concurrent_sends_through_both_nodes_stay_gapless() {
    if !enabled("concurrent_sends_through_both_nodes_stay_gapless") {
        return;
    }
    let nats = Nats::start();
    let (a, b) = two_nodes(&nats).await;
    let (site, messenger) = a.site_with_messenger().await;
    let on_a = a
        .messenger_of(site, &messenger)
        .contact("busy@example.test")
        .await;
    // The same contact, same token, through node B.
    let on_b = Contact {
        http: (*b).clone(),
        ..on_a.clone()
    };
    let (_, first) = on_a.try_send("first", "0").await;
    let conv = first["conversationId"].as_str().expect("id").to_owned();
    let mut sends = Vec::new();
    for i in 0..40 {
        let contact = if i % 2 == 0 {
            on_a.clone()
        } else {
            on_b.clone()
        };
        // Every fourth send repeats the one before it: idempotency across nodes too.
        let cmid = if i % 4 == 3 {
            format!("m{}", i - 1)
        } else {
            format!("m{i}")
        };
        sends.push(tokio::spawn(async move {
            contact.try_send(&cmid, &format!("{i}")).await
        }));
    }
    for s in sends {
        let (status, body) = s.await.expect("join");
        assert!(matches!(status, 200 | 201), "{status} {body}");
    }
    assert_eq!(
        seqs(&on_b.messages(&conv, "?limit=200").await),
        (1..=31).collect::<Vec<_>>(),
        "1 + 30 distinct client ids, gapless"
    );
}

#[tokio::test]
async fn tokens_and_logout_hold_across_nodes() {
    if !enabled("tokens_and_logout_hold_across_nodes") {
        return;
    }
    let nats = Nats::start();
    let (a, b) = two_nodes(&nats).await;
    let (site, messenger) = a.site_with_messenger().await;
    // An access token issued by A works on B.
    let contact = a.access_token(site, &messenger, "roam@example.test").await;
    let r = b
        .get("/api/v1/messenger/conversations", Some(&contact))
        .await;
    assert_eq!(r.status(), 200);
    // A logout on A ends the session on B: REST at once, and B's socket closes with 4401.
    let agent = a.site_of(site).agent("leaver@example.test", "agent").await;
    let (mut ws, _) = b.socket(AGENT_WS, &agent.token).await;
    assert_eq!(agent.logout().await, 204);
    assert_eq!(
        b.get(
            &format!("/api/v1/sites/{site}/conversations"),
            Some(&agent.token)
        )
        .await
        .status(),
        401
    );
    assert_eq!(ws.expect_close(SOON).await, Some(4401));
}

#[tokio::test]
async fn a_logout_on_one_node_closes_a_stalled_socket_on_the_other() {
    if !enabled("a_logout_on_one_node_closes_a_stalled_socket_on_the_other") {
        return;
    }
    let nats = Nats::start();
    let (a, b) = two_nodes(&nats).await;
    let (site, messenger) = a.site_with_messenger().await;
    let mark = a
        .messenger_of(site, &messenger)
        .contact("mark@example.test")
        .await;
    let agent = a.site_of(site).agent("leaver@example.test", "agent").await;
    // An agent socket on B whose client never reads (a tiny receive buffer), stuck in a send
    // after 180 × 40 KB messages.
    let tcp = tokio::net::TcpSocket::new_v4().expect("socket");
    tcp.set_recv_buffer_size(4096).expect("rcvbuf");
    let tcp = tcp.connect(b.addr).await.expect("connect");
    let mut slow = Socket::connect_over(&b.ws_url(AGENT_WS), tcp).await;
    slow.auth(&agent.token).await;
    let body = "😀".repeat(10_000);
    for i in 0..180 {
        mark.send(&format!("c-{i}"), &body).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.server().open_sockets(), 1);
    // The logout on A lets B go of the socket, though it is stuck in a send.
    assert_eq!(agent.logout().await, 204);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while b.server().open_sockets() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B still holds the stalled socket after the logout on A"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_security_change_on_one_node_governs_authorize_on_the_other() {
    if !enabled("a_security_change_on_one_node_governs_authorize_on_the_other") {
        return;
    }
    let nats = Nats::start();
    let (a, b) = two_nodes(&nats).await;
    let (site, messenger) = a.site_with_messenger().await;
    let jwt = hs256(
        SECRET,
        &json!({"sub": "x@example.test", "exp": now() + 600}),
    );
    assert_eq!(b.authorize(site, &messenger, &jwt).await.status(), 200);
    let new_secret = "another-secret-0123456789abcdef-0123456789";
    let r = a
        .put(
            &format!("/api/v1/sites/{site}/messengers/{messenger}/security"),
            Some(OPERATOR),
            &json!({"validation": {"method": "sharedToken", "sharedToken": new_secret}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        error_code(b.authorize(site, &messenger, &jwt).await).await,
        (401, "signature_invalid".to_owned())
    );
    let fresh = hs256(
        new_secret,
        &json!({"sub": "x@example.test", "exp": now() + 600}),
    );
    assert_eq!(b.authorize(site, &messenger, &fresh).await.status(), 200);
}

#[tokio::test]
async fn a_bus_restart_loses_nothing_for_connected_clients() {
    if !enabled("a_bus_restart_loses_nothing_for_connected_clients") {
        return;
    }
    let mut nats = Nats::start();
    let (a, b) = two_nodes(&nats).await;
    let (site, messenger) = a.site_with_messenger().await;
    let contact = a
        .messenger_of(site, &messenger)
        .contact("steady@example.test")
        .await;
    let agent = b.site_of(site).agent("watcher@example.test", "agent").await;
    let (mut agent_ws, _) = agent.socket().await;
    let send = |cmid: &'static str, body: &'static str| {
        let contact = contact.clone();
        async move { contact.try_send(cmid, body).await.0 }
    };
    assert_eq!(send("1", "before").await, 201);
    assert_eq!(next_message(&mut agent_ws).await, (1, "before".to_owned()));

    // The bus goes away: sends still succeed (the store is the truth) but B hears nothing.
    nats.stop();
    assert_eq!(send("2", "during 1").await, 201);
    assert_eq!(send("3", "during 2").await, 201);
    nats.restart();
    // Give both nodes time to reconnect, then one more send: B sees the gap and fills it.
    let bus = |node: &TestApp| {
        let node = (**node).clone();
        async move {
            node.get("/healthz", None)
                .await
                .json::<Value>()
                .await
                .expect("json")["bus"]
                == "connected"
        }
    };
    let mut ok = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if bus(&a).await && bus(&b).await {
            ok = true;
            break;
        }
    }
    assert!(ok, "both nodes reconnect to the bus");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(send("4", "after").await, 201);
    let got: Vec<(i64, String)> = vec![
        next_message(&mut agent_ws).await,
        next_message(&mut agent_ws).await,
        next_message(&mut agent_ws).await,
    ];
    assert_eq!(
        got,
        vec![
            (2, "during 1".to_owned()),
            (3, "during 2".to_owned()),
            (4, "after".to_owned())
        ]
    );
}

#[tokio::test]
async fn both_schemas_have_the_same_tables_and_columns() {
    if backend() != "postgres" {
        eprintln!("both_schemas_have_the_same_tables_and_columns: runs in the PostgreSQL pass");
        return;
    }
    let pg = TestApp::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    let a = server::schema_columns(&sqlite).await;
    let b = server::schema_columns(&pg.database_url).await;
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

#[tokio::test]
async fn killing_a_node_mid_stream_loses_no_acknowledged_message() {
    if !enabled("killing_a_node_mid_stream_loses_no_acknowledged_message") {
        return;
    }
    let nats = Nats::start();
    let b = TestApp::spawn_with(|s| {
        s.bus_url = Some(nats.url());
        s.rate_limits = false;
    })
    .await;
    // Node A is the real binary on the same database and bus, behind the same public URL.
    let mut node_a = ServerProcess::start(
        crate::BIN,
        &b.database_url,
        &[
            "--master-key-file",
            &b.master_key_file,
            "--bus-url",
            &nats.url(),
            "--public-url",
            &b.base,
            "--rate-limits",
            "off",
        ],
    )
    .await;
    let (site, messenger) = b.site_with_messenger().await;
    let token = b
        .access_token(site, &messenger, "stream@example.test")
        .await;

    // The contact listens on node A while a stream of sends goes to node A.
    let (mut ws, _) = node_a.socket(CONTACT_WS, &token).await;
    let (client, send_url, t) = (
        b.client.clone(),
        node_a.url("/api/v1/messenger/messages"),
        token.clone(),
    );
    // The stream counts its acknowledgements so the kill can wait for 20 of them: a live push
    // can reach the socket before the sender has read its 201.
    let acked_count = Arc::new(AtomicUsize::new(0));
    let counter = acked_count.clone();
    let stream = tokio::spawn(async move {
        let mut acked: Vec<(i64, String)> = Vec::new();
        for i in 0..10_000 {
            let body = format!("m{i}");
            match client
                .post(&send_url)
                .bearer_auth(&t)
                .json(&json!({"clientMessageId": body, "body": body}))
                .send()
                .await
            {
                Ok(r) if r.status() == 201 => {
                    let v: Value = r.json().await.expect("json");
                    acked.push((v["seq"].as_i64().expect("seq"), body));
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                _ => break, // node A is gone
            }
        }
        acked
    });
    // Read a few live pushes, then kill -9 node A in the middle of the stream.
    let mut seen: Vec<(i64, String)> = Vec::new();
    let mut conv = String::new();
    while seen.len() < 20 {
        let v = ws.next_json().await;
        if v["type"] == "message" {
            conv = v["message"]["conversationId"]
                .as_str()
                .expect("conv")
                .to_owned();
            seen.push(seq_body(&v["message"]));
        }
    }
    let waited = std::time::Instant::now();
    while acked_count.load(Ordering::SeqCst) < 20 {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the stream stalled"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    node_a.kill_9();
    let acked = stream.await.expect("stream");
    assert!(acked.len() >= 20);

    // The contact reconnects to node B and resumes after the last seq it saw.
    let (mut ws, _) = b.socket(CONTACT_WS, &token).await;
    let last = seen.last().map(|s| s.0).unwrap_or(0);
    ws.resume(&conv, last).await;
    let stored_last = acked.last().map(|a| a.0).unwrap_or(0);
    while seen.last().map(|s| s.0).unwrap_or(0) < stored_last {
        let (seq, body) = next_message(&mut ws).await;
        seen.push((seq, body));
    }
    // Every acknowledged message was seen exactly once, in order, with gapless seqs.
    let seqs: Vec<i64> = seen.iter().map(|s| s.0).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    for a in &acked {
        assert!(seen.contains(a), "acknowledged {a:?} was not delivered");
    }
}
