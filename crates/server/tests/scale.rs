//! Several server processes as one (the scale-out issue): two servers on one PostgreSQL
//! database and one NATS bus. These run in the PostgreSQL pass of the suite
//! (`CONFIDANT_TEST_BACKEND=postgres`); each test starts its own nats-server on a free port so
//! that it can stop and restart the bus.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Whether this pass runs the multi-process tests; says so loudly when it does not.
fn enabled(test: &str) -> bool {
    if backend() != "postgres" {
        eprintln!("{test}: runs in the PostgreSQL pass (CONFIDANT_TEST_BACKEND=postgres)");
        return false;
    }
    if !std::path::Path::new(NATS_BIN).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "nats-server is missing at {NATS_BIN} and CI=true"
        );
        eprintln!("!!!! SKIPPED {test}: nats-server is not installed at {NATS_BIN} !!!!");
        return false;
    }
    true
}

const NATS_BIN: &str = "/usr/sbin/nats-server";

struct Nats {
    port: u16,
    child: Option<Child>,
}

impl Nats {
    fn start() -> Nats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut n = Nats { port, child: None };
        n.restart();
        n
    }
    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    fn restart(&mut self) {
        self.stop();
        let child = Command::new(NATS_BIN)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not start");
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn two_nodes(nats: &Nats) -> (TestApp, TestApp) {
    let url = nats.url();
    let a = TestApp::spawn_with(|s| {
        s.bus_url = Some(url.clone());
        s.rate_limits = "off".into();
    })
    .await;
    let public = a.base.clone();
    let b = a
        .spawn_peer(|s| {
            // Processes behind one load balancer share one public URL.
            s.public_url = Some(public);
            s.bus_url = Some(url.clone());
            s.rate_limits = "off".into();
        })
        .await;
    (a, b)
}

async fn open(app: &TestApp, path: &str, token: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url(path))
        .await
        .expect("ws connect");
    ws.send(Message::text(
        json!({"type": "auth", "token": token}).to_string(),
    ))
    .await
    .expect("auth");
    let ready = next_json(&mut ws).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    ws
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("open")
            .expect("frame");
        match m {
            Message::Text(t) => return serde_json::from_str(&t).expect("json"),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// The next `message` event's (seq, body), skipping other event types.
async fn next_message(ws: &mut Ws) -> (i64, String) {
    loop {
        let v = next_json(ws).await;
        if v["type"] == "message" {
            return (
                v["message"]["seq"].as_i64().expect("seq"),
                v["message"]["body"].as_str().expect("body").to_owned(),
            );
        }
    }
}

async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .ok()??
        {
            Ok(Message::Close(c)) => return c.map(|c| u16::from(c.code)),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_contact_on_node_a_and_an_agent_on_node_b_talk_live_both_ways() {
    if !enabled("a_contact_on_node_a_and_an_agent_on_node_b_talk_live_both_ways") {
        return;
    }
    let nats = Nats::start();
    let (a, b) = two_nodes(&nats).await;
    let (site, messenger) = a.site_with_messenger().await;
    let contact = a.access_token(site, &messenger, "mark@example.test").await;
    let agent = b.agent_token(site, "agent@example.test", "agent").await;
    let mut contact_ws = open(&a, "/api/v1/messenger/ws", &contact).await;
    let mut agent_ws = open(&b, "/api/v1/agent/ws", &agent).await;

    let r = a
        .post(
            "/api/v1/messenger/messages",
            Some(&contact),
            &json!({"clientMessageId": "c1", "body": "from A"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let conv = r.json::<Value>().await.expect("json")["conversationId"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(next_message(&mut agent_ws).await, (1, "from A".to_owned()));

    let r = b
        .post(
            &format!("/api/v1/sites/{site}/conversations/{conv}/messages"),
            Some(&agent),
            &json!({"clientMessageId": "a1", "body": "from B"}),
        )
        .await;
    assert_eq!(r.status(), 201);
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
    let token = a.access_token(site, &messenger, "busy@example.test").await;
    let first = a
        .post(
            "/api/v1/messenger/messages",
            Some(&token),
            &json!({"clientMessageId": "first", "body": "0"}),
        )
        .await;
    let conv = first.json::<Value>().await.expect("json")["conversationId"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut sends = Vec::new();
    for i in 0..40 {
        let node = if i % 2 == 0 { &a } else { &b };
        let (client, url, token) = (
            node.client.clone(),
            node.url("/api/v1/messenger/messages"),
            token.clone(),
        );
        // Every fourth send repeats the one before it: idempotency across nodes too.
        let cmid = if i % 4 == 3 {
            format!("m{}", i - 1)
        } else {
            format!("m{i}")
        };
        sends.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"clientMessageId": cmid, "body": format!("{i}")}))
                .send()
                .await
                .expect("send");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }));
    }
    for s in sends {
        let (status, body) = s.await.expect("join");
        assert!(matches!(status, 200 | 201), "{status} {body}");
    }
    let r = b
        .get(
            &format!("/api/v1/messenger/conversations/{conv}/messages?limit=200"),
            Some(&token),
        )
        .await;
    let msgs = r.json::<Value>().await.expect("json")["messages"]
        .as_array()
        .expect("list")
        .clone();
    let seqs: Vec<i64> = msgs
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
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
    let agent = a.agent_token(site, "leaver@example.test", "agent").await;
    let mut ws = open(&b, "/api/v1/agent/ws", &agent).await;
    let r = a
        .post("/api/v1/auth/logout", Some(&agent), &json!({}))
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        b.get(&format!("/api/v1/sites/{site}/conversations"), Some(&agent))
            .await
            .status(),
        401
    );
    assert_eq!(close_code(&mut ws).await, Some(4401));
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
        .access_token(site, &messenger, "steady@example.test")
        .await;
    let agent = b.agent_token(site, "watcher@example.test", "agent").await;
    let mut agent_ws = open(&b, "/api/v1/agent/ws", &agent).await;
    let send = |cmid: &'static str, body: &'static str| {
        let (client, url, token) = (
            a.client.clone(),
            a.url("/api/v1/messenger/messages"),
            contact.clone(),
        );
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"clientMessageId": cmid, "body": body}))
                .send()
                .await
                .expect("send")
        }
    };
    assert_eq!(send("1", "before").await.status(), 201);
    assert_eq!(next_message(&mut agent_ws).await, (1, "before".to_owned()));

    // The bus goes away: sends still succeed (the store is the truth) but B hears nothing.
    nats.stop();
    assert_eq!(send("2", "during 1").await.status(), 201);
    assert_eq!(send("3", "during 2").await.status(), 201);
    nats.restart();
    // Give both nodes time to reconnect, then one more send: B sees the gap and fills it.
    let mut ok = false;
    for i in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if a.get("/healthz", None)
            .await
            .json::<Value>()
            .await
            .expect("json")["bus"]
            == "connected"
            && b.get("/healthz", None)
                .await
                .json::<Value>()
                .await
                .expect("json")["bus"]
                == "connected"
        {
            ok = true;
            let _ = i;
            break;
        }
    }
    assert!(ok, "both nodes reconnect to the bus");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(send("4", "after").await.status(), 201);
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
    let sqlite = confidant_store::Store::connect(
        &format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display()),
        Duration::from_secs(5),
    )
    .await
    .expect("sqlite");
    let pg_store = confidant_store::Store::connect(&pg.database_url, Duration::from_secs(5))
        .await
        .expect("pg");
    let a = sqlite.schema_columns().await.expect("sqlite schema");
    let b = pg_store.schema_columns().await.expect("pg schema");
    assert!(!a.is_empty());
    assert_eq!(a, b);
    pg_store.close().await;
    sqlite.close().await;
}

/// A server process that is killed when the test ends, however it ends.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the real binary as another node on the same database and bus.
fn spawn_binary_node(peer_of: &TestApp, nats: &Nats, public: &str) -> (Node, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let child = Command::new(env!("CARGO_BIN_EXE_confidant"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &peer_of.database_url,
            "--bus-url",
            &nats.url(),
        ])
        .args(["--public-url", public, "--rate-limits", "off"])
        .env("CONFIDANT_ADMIN_TOKEN", OPERATOR)
        .env("CONFIDANT_DATA_DIR", &dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    let node = Node(child);
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (node, port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the binary did not start");
}

#[tokio::test]
async fn killing_a_node_mid_stream_loses_no_acknowledged_message() {
    if !enabled("killing_a_node_mid_stream_loses_no_acknowledged_message") {
        return;
    }
    let nats = Nats::start();
    let b = TestApp::spawn_with(|s| {
        s.bus_url = Some(nats.url());
        s.rate_limits = "off".into();
    })
    .await;
    let (mut node_a, port_a) = spawn_binary_node(&b, &nats, &b.base);
    let a_url = format!("http://127.0.0.1:{port_a}");
    let (site, messenger) = b.site_with_messenger().await;
    let token = b
        .access_token(site, &messenger, "stream@example.test")
        .await;

    // The contact listens on node A while a stream of sends goes to node A.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port_a}/api/v1/messenger/ws"))
            .await
            .expect("ws");
    ws.send(Message::text(
        json!({"type": "auth", "token": token}).to_string(),
    ))
    .await
    .expect("auth");
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    let (client, send_url, t) = (
        b.client.clone(),
        format!("{a_url}/api/v1/messenger/messages"),
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
        let v = next_json(&mut ws).await;
        if v["type"] == "message" {
            conv = v["message"]["conversationId"]
                .as_str()
                .expect("conv")
                .to_owned();
            seen.push((
                v["message"]["seq"].as_i64().expect("seq"),
                v["message"]["body"].as_str().expect("body").to_owned(),
            ));
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
    node_a.0.kill().expect("kill -9");
    let _ = node_a.0.wait();
    let acked = stream.await.expect("stream");
    assert!(acked.len() >= 20);

    // The contact reconnects to node B and resumes after the last seq it saw.
    let mut ws = open(&b, "/api/v1/messenger/ws", &token).await;
    let last = seen.last().map(|s| s.0).unwrap_or(0);
    ws.send(Message::text(
        json!({"type": "resume", "conversationId": conv, "afterSeq": last}).to_string(),
    ))
    .await
    .expect("resume");
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
