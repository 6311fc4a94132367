//! Webhooks (CONTRACT §10): the API from the admin's and the attacker's side, signed delivery
//! to a receiver on loopback (`--allow-private-urls on`), retries, the delivery log, the test
//! event, delivery across a `kill -9`, and the two verification examples run on a real
//! delivery.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confidant_testkit::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

// ---- a receiver on loopback ----

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    /// Close the connection without an answer.
    Drop,
    /// Answer with this status after this many milliseconds.
    Slow(u64, u16),
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    method: String,
    path: String,
    /// Header names in lower case.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// A small HTTP/1.1 server (keep-alive, Content-Length bodies) that records every request and
/// answers from a script (then `default`).
#[derive(Clone)]
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Got>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    default: Arc<Mutex<Reply>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::serve(listener)
    }

    /// On a given port (after a restart of the test's receiver).
    fn serve(listener: tokio::net::TcpListener) -> Receiver {
        let r = Receiver {
            port: listener.local_addr().expect("addr").port(),
            got: Arc::default(),
            script: Arc::default(),
            default: Arc::new(Mutex::new(Reply::Status(200))),
        };
        let me = r.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(me.clone().connection(socket));
            }
        });
        r
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn then(&self, replies: &[Reply]) {
        self.script
            .lock()
            .expect("lock")
            .extend(replies.iter().copied());
    }

    fn always(&self, reply: Reply) {
        *self.default.lock().expect("lock") = reply;
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().expect("lock").clone()
    }

    /// Wait until at least `n` requests came (at most `within`); all of them.
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Got> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the receiver got {} of {n} requests in {within:?}: {:?}",
                got.len(),
                got.iter()
                    .map(|g| g.json()["type"].clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn connection(self, mut socket: tokio::net::TcpStream) {
        let mut buf: Vec<u8> = Vec::new();
        loop {
            // The head.
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let mut chunk = [0u8; 8192];
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let mut lines = head.split("\r\n");
            let mut request_line = lines.next().unwrap_or_default().split(' ');
            let method = request_line.next().unwrap_or_default().to_owned();
            let path = request_line.next().unwrap_or_default().to_owned();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < head_end + length {
                let mut chunk = [0u8; 8192];
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body = buf[head_end..head_end + length].to_vec();
            buf.drain(..head_end + length);
            self.got.lock().expect("lock").push(Got {
                method,
                path,
                headers,
                body,
            });
            let reply = self
                .script
                .lock()
                .expect("lock")
                .pop_front()
                .unwrap_or(*self.default.lock().expect("lock"));
            let reply = match reply {
                Reply::Slow(ms, code) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Reply::Status(code)
                }
                other => other,
            };
            match reply {
                Reply::Drop | Reply::Slow(..) => return,
                Reply::Status(code) => {
                    let answer = format!(
                        "HTTP/1.1 {code} X\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"
                    );
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

// ---- helpers ----

fn hooks_path(site: i64) -> String {
    format!("/api/v1/sites/{site}/webhooks")
}

/// Create a webhook as the operator: (status, body).
async fn create(app: &Http, site: i64, body: Value) -> (u16, Value) {
    json_of(app.post(&hooks_path(site), Some(OPERATOR), &body).await).await
}

/// A webhook that must be created: (webhookId, secret).
async fn hook(
    app: &Http,
    site: i64,
    url: &str,
    events: &[&str],
    include_body: bool,
) -> (String, String) {
    let (s, v) = create(
        app,
        site,
        json!({"url": url, "events": events, "includeBody": include_body}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    (
        v["webhookId"].as_str().expect("webhookId").to_owned(),
        v["secret"].as_str().expect("secret").to_owned(),
    )
}

async fn delete(app: &Http, token: &str, site: i64, id: &str) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("{}/{id}", hooks_path(site))))
        .bearer_auth(token)
        .send()
        .await
        .expect("DELETE")
}

async fn deliveries(app: &Http, site: i64, id: &str) -> Vec<Value> {
    let (s, v) = json_of(
        app.get(
            &format!("{}/{id}/deliveries", hooks_path(site)),
            Some(OPERATOR),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["deliveries"].as_array().expect("deliveries").clone()
}

/// Wait until the log of a webhook holds at least `n` attempts (it is written in batches).
async fn wait_deliveries(app: &Http, site: i64, id: &str, n: usize) -> Vec<Value> {
    wait_deliveries_for(app, site, id, n, Duration::from_secs(10)).await
}

async fn wait_deliveries_for(
    app: &Http,
    site: i64,
    id: &str,
    n: usize,
    within: Duration,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let d = deliveries(app, site, id).await;
        if d.len() >= n {
            return d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the log has {} of {n} attempts: {d:?}",
            d.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        &signed,
    );
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// Whether `header` is `t=<t>,v1=<HMAC-SHA256(secret, "<t>.<body>")>` with `t` near now.
fn signature_ok(secret: &str, header: &str, body: &[u8]) -> bool {
    use aws_lc_rs::hmac;
    let Some((t, v1)) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let Ok(t_num) = t.parse::<i64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    if (now - t_num).abs() > 300 {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    let Some(tag) = (0..v1.len() / 2)
        .map(|i| u8::from_str_radix(v1.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    hmac::verify(&key, &signed, &tag).is_ok()
}

/// A server that may post to loopback (the receiver), with rate limits off.
async fn private_app() -> TestApp {
    TestApp::spawn_with(|s| {
        s.allow_private_urls = true;
        s.rate_limits = false;
    })
    .await
}

// ---- the API ----

#[tokio::test]
async fn create_list_delete_and_the_secret_shown_once() {
    let app = private_app().await;
    let site = app.site("Acme").await;
    let (s, created) = create(
        &app,
        site.id,
        json!({"url": "https://hooks.example.com/confidant", "events": ["message.created", "conversation.closed", "message.created"]}),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["url"], "https://hooks.example.com/confidant");
    assert_eq!(
        created["events"],
        json!(["message.created", "conversation.closed"])
    );
    assert_eq!(created["includeBody"], false);
    let secret = created["secret"].as_str().expect("secret");
    let raw = secret.strip_prefix("whsec_").expect("whsec_ prefix");
    assert_eq!(raw.len(), 43, "32 bytes in base64url");
    assert!(
        raw.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let id = created["webhookId"].as_str().expect("id").to_owned();

    // The list: no secret anywhere in it, however it is read.
    let r = app.get(&hooks_path(site.id), Some(OPERATOR)).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    assert!(!text.contains(raw), "the secret is in the list: {text}");
    let list: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(list["webhooks"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["webhooks"][0]["webhookId"], id.as_str());
    assert!(list["webhooks"][0].get("secret").is_none());

    // A second one, with the body.
    let (_, second_secret) = hook(
        &app,
        site.id,
        "https://b.example.com/",
        &["message.created"],
        true,
    )
    .await;
    assert_ne!(second_secret, secret, "every webhook has its own secret");

    assert_eq!(delete(&app, OPERATOR, site.id, &id).await.status(), 204);
    assert_eq!(delete(&app, OPERATOR, site.id, &id).await.status(), 404);
    let (_, list) = json_of(app.get(&hooks_path(site.id), Some(OPERATOR)).await).await;
    assert_eq!(list["webhooks"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["webhooks"][0]["includeBody"], true);
}

#[tokio::test]
async fn bad_webhooks_are_refused_with_the_field_named() {
    // Without --allow-private-urls: https to a public host only.
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let ok_url = "https://hooks.example.com/x";
    for (body, field) in [
        (json!({"events": ["message.created"]}), "url"),
        (json!({"url": "", "events": ["message.created"]}), "url"),
        (
            json!({"url": "not a url", "events": ["message.created"]}),
            "url",
        ),
        (
            json!({"url": "http://hooks.example.com/x", "events": ["message.created"]}),
            "url",
        ),
        (
            json!({"url": "https://127.0.0.1/x", "events": ["message.created"]}),
            "url",
        ),
        (
            json!({"url": "https://localhost:8443/x", "events": ["message.created"]}),
            "url",
        ),
        (
            json!({"url": "https://169.254.169.254/latest", "events": ["message.created"]}),
            "url",
        ),
        (
            json!({"url": "https://[::1]/x", "events": ["message.created"]}),
            "url",
        ),
        (
            json!({"url": "https://10.1.2.3/x", "events": ["message.created"]}),
            "url",
        ),
        (
            json!({"url": "https://u:p@hooks.example.com/x", "events": ["message.created"]}),
            "url",
        ),
        (
            json!({"url": "ftp://hooks.example.com/x", "events": ["message.created"]}),
            "url",
        ),
        (
            json!({"url": format!("https://hooks.example.com/{}", "a".repeat(3000)), "events": ["message.created"]}),
            "url",
        ),
        (json!({"url": ok_url}), "events"),
        (json!({"url": ok_url, "events": []}), "events"),
        (
            json!({"url": ok_url, "events": ["message.created", "message.deleted"]}),
            "events[1]",
        ),
        (
            json!({"url": ok_url, "events": ["webhook.test"]}),
            "events[0]",
        ),
        (
            json!({"url": ok_url, "events": "message.created"}),
            "events",
        ),
        (json!({"url": ok_url, "events": [1]}), "events"),
        (json!({"url": 5, "events": ["message.created"]}), "url"),
        (
            json!({"url": ok_url, "events": ["message.created"], "includeBody": "yes"}),
            "includeBody",
        ),
    ] {
        let (s, code, v) =
            answer(app.post(&hooks_path(site.id), Some(OPERATOR), &body).await).await;
        assert_eq!((s, code.as_str()), (400, "invalid_request"), "{body}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(field),
            "{body}: the message {message:?} does not name {field}"
        );
    }
    // Every bad field at once: the URL, and each event that is not one.
    let (s, v) = create(
        &app,
        site.id,
        json!({"url": "hooks.example.com", "events": ["message.created", "message.sent", "chat"]}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(fields_named(&v), ["url", "events[1]", "events[2]"], "{v}");
    let (s, v) = create(&app, site.id, json!({"url": "", "events": []})).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(fields_named(&v), ["url", "events"], "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("events: choose at least one of")),
        "{v}"
    );
    let (s, v) = create(&app, site.id, json!(["not an object"])).await;
    assert_eq!(s, 400, "{v}");
    // Nothing was stored.
    let (_, list) = json_of(app.get(&hooks_path(site.id), Some(OPERATOR)).await).await;
    assert_eq!(list["webhooks"], json!([]));
    // Bad path parameters: 400 before any lookup.
    let r = app
        .get(
            &format!("{}/not-a-uuid/deliveries", hooks_path(site.id)),
            Some(OPERATOR),
        )
        .await;
    assert_eq!(error_code(r).await, (400, "invalid_request".to_owned()));
    let r = app.get("/api/v1/sites/abc/webhooks", Some(OPERATOR)).await;
    assert_eq!(error_code(r).await, (400, "invalid_request".to_owned()));
}

#[tokio::test]
async fn only_the_sites_admins_see_its_webhooks() {
    let app = private_app().await;
    let acme = app.site("Acme").await;
    let other = app.site("Other").await;
    let (id, _) = hook(
        &app,
        acme.id,
        "https://hooks.example.com/a",
        &["message.created"],
        false,
    )
    .await;
    let acme_agent = acme.agent("agent@acme.test", "agent").await;
    let acme_admin = acme.agent("admin@acme.test", "admin").await;
    let other_admin = other.agent("admin@other.test", "admin").await;

    // An agent of the site: 403 on everything.
    let r = app.get(&hooks_path(acme.id), Some(&acme_agent.token)).await;
    assert_eq!(error_code(r).await, (403, "forbidden".to_owned()));
    let r = app
        .post(
            &hooks_path(acme.id),
            Some(&acme_agent.token),
            &json!({"url": "https://x.example.com/", "events": ["message.created"]}),
        )
        .await;
    assert_eq!(error_code(r).await, (403, "forbidden".to_owned()));
    assert_eq!(
        delete(&app, &acme_agent.token, acme.id, &id).await.status(),
        403
    );

    // Another site's admin: 404, through its own site's path too.
    let r = app
        .get(&hooks_path(acme.id), Some(&other_admin.token))
        .await;
    assert_eq!(error_code(r).await, (404, "not_found".to_owned()));
    for path in [
        format!("{}/{id}/deliveries", hooks_path(other.id)),
        format!("{}/{id}/deliveries", hooks_path(acme.id)),
    ] {
        let r = app.get(&path, Some(&other_admin.token)).await;
        assert_eq!(error_code(r).await.0, 404, "{path}");
    }
    for site in [acme.id, other.id] {
        let r = app
            .post(
                &format!("{}/{id}/test", hooks_path(site)),
                Some(&other_admin.token),
                &json!({}),
            )
            .await;
        assert_eq!(error_code(r).await.0, 404);
        assert_eq!(
            delete(&app, &other_admin.token, site, &id).await.status(),
            404
        );
    }
    // The operator through the other site's path: 404 too (the webhook is not that site's).
    assert_eq!(delete(&app, OPERATOR, other.id, &id).await.status(), 404);
    let r = app
        .get(
            &format!("{}/{id}/deliveries", hooks_path(other.id)),
            Some(OPERATOR),
        )
        .await;
    assert_eq!(error_code(r).await.0, 404);
    let r = app.get(&hooks_path(99999), Some(OPERATOR)).await;
    assert_eq!(error_code(r).await.0, 404);

    // The site's admin: everything; the webhook survived the attempts above.
    let (s, list) = json_of(app.get(&hooks_path(acme.id), Some(&acme_admin.token)).await).await;
    assert_eq!(
        (s, list["webhooks"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    assert_eq!(
        delete(&app, &acme_admin.token, acme.id, &id).await.status(),
        204
    );
}

#[tokio::test]
async fn a_site_has_at_most_twenty_webhooks() {
    let app = private_app().await;
    let site = app.site("Acme").await;
    let mut first = String::new();
    for i in 0..20 {
        let (id, _) = hook(
            &app,
            site.id,
            &format!("https://h{i}.example.com/"),
            &["message.created"],
            false,
        )
        .await;
        if i == 0 {
            first = id;
        }
    }
    let (s, code, _) = answer(
        app.post(
            &hooks_path(site.id),
            Some(OPERATOR),
            &json!({"url": "https://h20.example.com/", "events": ["message.created"]}),
        )
        .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "conflict"));
    // Another site is not affected, and a deletion makes room.
    let other = app.site("Other").await;
    hook(
        &app,
        other.id,
        "https://o.example.com/",
        &["message.created"],
        false,
    )
    .await;
    assert_eq!(delete(&app, OPERATOR, site.id, &first).await.status(), 204);
    hook(
        &app,
        site.id,
        "https://h20.example.com/",
        &["message.created"],
        false,
    )
    .await;
}

// ---- the test event and the log ----

#[tokio::test]
async fn the_test_event_is_signed_and_logged() {
    let app = private_app().await;
    let site = app.site("Acme").await;
    let receiver = Receiver::start().await;
    let (id, secret) = hook(&app, site.id, &receiver.url(), &["message.created"], false).await;

    let (s, v) = json_of(
        app.post(
            &format!("{}/{id}/test", hooks_path(site.id)),
            Some(OPERATOR),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["delivered"], true, "{v}");
    assert_eq!(v["status"], 200);
    assert!(v["latencyMs"].as_i64().is_some_and(|ms| ms >= 0));
    let got = receiver.got();
    assert_eq!(got.len(), 1);
    let g = &got[0];
    assert_eq!((g.method.as_str(), g.path.as_str()), ("POST", "/hook"));
    assert_eq!(g.header("content-type"), Some("application/json"));
    let body = g.json();
    assert_eq!(body["type"], "webhook.test");
    assert_eq!(body["id"], v["eventId"]);
    assert_eq!(body["siteId"], site.id);
    assert_eq!(g.header("confidant-event-id"), body["id"].as_str());
    let sig = g.header("confidant-signature").expect("signature");
    assert!(signature_ok(&secret, sig, &g.body), "{sig}");
    assert!(!signature_ok("whsec_wrong", sig, &g.body));
    let mut tampered = g.body.clone();
    tampered.push(b' ');
    assert!(!signature_ok(&secret, sig, &tampered));

    // A failing receiver: the answer says so, and the log has both, newest first.
    receiver.then(&[Reply::Status(503)]);
    let (_, v) = json_of(
        app.post(
            &format!("{}/{id}/test", hooks_path(site.id)),
            Some(OPERATOR),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (v["delivered"].clone(), v["status"].clone()),
        (json!(false), json!(503))
    );
    let log = wait_deliveries(&app, site.id, &id, 2).await;
    assert_eq!(log[0]["status"], 503);
    assert_eq!(log[0]["delivered"], false);
    assert_eq!(log[0]["error"], "answered HTTP 503");
    assert_eq!(log[1]["status"], 200);
    assert_eq!(log[1]["delivered"], true);
    assert_eq!(log[1]["type"], "webhook.test");
    assert_eq!(log[1]["eventId"], body["id"]);
    assert!(log[0]["at"].as_str().is_some_and(|t| t.ends_with('Z')));

    // No receiver at all: no status, a reason.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let (gone, _) = hook(
        &app,
        site.id,
        &format!("http://127.0.0.1:{closed}/"),
        &["message.created"],
        false,
    )
    .await;
    let (_, v) = json_of(
        app.post(
            &format!("{}/{gone}/test", hooks_path(site.id)),
            Some(OPERATOR),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(v["delivered"], false, "{v}");
    assert_eq!(v["status"], Value::Null);
    assert_eq!(v["error"], "could not connect");
}

#[tokio::test]
async fn the_log_keeps_the_newest_hundred() {
    let app = private_app().await;
    let site = app.site("Acme").await;
    let receiver = Receiver::start().await;
    let (id, _) = hook(&app, site.id, &receiver.url(), &["message.created"], false).await;
    let mut event_ids = Vec::new();
    for i in 0..105 {
        // Every 10th fails, so the log shows both kinds.
        if i % 10 == 0 {
            receiver.then(&[Reply::Status(500)]);
        }
        let (s, v) = json_of(
            app.post(
                &format!("{}/{id}/test", hooks_path(site.id)),
                Some(OPERATOR),
                &json!({}),
            )
            .await,
        )
        .await;
        assert_eq!(s, 200, "{v}");
        event_ids.push(v["eventId"].as_str().expect("eventId").to_owned());
    }
    let log = deliveries(&app, site.id, &id).await;
    assert_eq!(log.len(), 100);
    let logged: Vec<String> = log
        .iter()
        .map(|d| d["eventId"].as_str().expect("eventId").to_owned())
        .collect();
    let mut newest: Vec<String> = event_ids[5..].to_vec();
    newest.reverse();
    assert_eq!(logged, newest, "the newest 100, newest first");
    for (d, i) in log.iter().zip((5..105).rev()) {
        assert_eq!(d["delivered"], i % 10 != 0, "{d}");
        assert_eq!(d["status"], if i % 10 == 0 { 500 } else { 200 });
    }
}

// ---- the verification examples of docs/INTEGRATING.md ----

/// Run an example verifier on a delivery: exit status 0 means "signature ok".
fn run_example(program: &str, script: &str, header: &str, secret: &str, body: &[u8]) -> bool {
    use std::io::Write as _;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/webhooks")
        .join(script);
    let mut child = std::process::Command::new(program)
        .arg(&path)
        .arg(header)
        .env("CONFIDANT_WEBHOOK_SECRET", secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} {}: {e}", path.display()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body)
        .expect("write the body");
    child.wait().expect("wait").success()
}

#[tokio::test]
async fn the_node_and_python_examples_verify_a_real_delivery() {
    let app = private_app().await;
    let site = app.site("Acme").await;
    let receiver = Receiver::start().await;
    let (id, secret) = hook(&app, site.id, &receiver.url(), &["message.created"], false).await;
    let r = app
        .post(
            &format!("{}/{id}/test", hooks_path(site.id)),
            Some(OPERATOR),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let got = receiver.got();
    let g = got.first().expect("a delivery");
    let header = g
        .header("confidant-signature")
        .expect("signature")
        .to_owned();
    let mut tampered = g.body.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    // Signed right, but ten minutes ago: refused for its age alone.
    let t: i64 = header
        .trim_start_matches("t=")
        .split(',')
        .next()
        .and_then(|t| t.parse().ok())
        .expect("t");
    let old = sign(&secret, t - 600, &g.body);
    let fresh = sign(&secret, t, &g.body);
    assert_eq!(
        fresh, header,
        "the test's own signer agrees with the server"
    );
    for (program, script) in [("node", "verify.mjs"), ("python3", "verify.py")] {
        assert!(
            run_example(program, script, &header, &secret, &g.body),
            "{script}: a good delivery"
        );
        assert!(
            !run_example(program, script, &header, &secret, &tampered),
            "{script}: a tampered body"
        );
        assert!(
            !run_example(program, script, &header, "whsec_another", &g.body),
            "{script}: another secret"
        );
        assert!(
            !run_example(program, script, &old, &secret, &g.body),
            "{script}: t ten minutes old"
        );
        assert!(
            !run_example(program, script, "", &secret, &g.body),
            "{script}: no header"
        );
    }
}

// ---- delivery of events ----

/// The event types the receiver got, sorted.
fn types(got: &[Got]) -> Vec<String> {
    let mut t: Vec<String> = got
        .iter()
        .map(|g| g.json()["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    t.sort();
    t
}

#[tokio::test]
async fn a_message_is_delivered_once_signed_and_without_its_body() {
    let app = private_app().await;
    let site = app.site("Acme").await;
    let mark = site
        .messenger(json!({}))
        .await
        .contact("mark@example.test")
        .await;
    let receiver = Receiver::start().await;
    let (id, secret) = hook(&app, site.id, &receiver.url(), &["message.created"], false).await;

    let sent = mark.send("c-1", "my diagnosis is private").await;
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    // Only what it subscribed to: the conversation that opened is not delivered.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let got_all = receiver.got();
    assert_eq!(got_all.len(), 1, "{:?}", types(&got_all));
    let g = &got[0];
    assert_eq!(g.method, "POST");
    assert_eq!(g.header("content-type"), Some("application/json"));
    assert!(signature_ok(
        &secret,
        g.header("confidant-signature").expect("signature"),
        &g.body
    ));
    let body = g.json();
    assert_eq!(body["type"], "message.created");
    assert_eq!(g.header("confidant-event-id"), body["id"].as_str());
    assert_eq!(body["siteId"], site.id);
    assert!(
        body["createdAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('.'))
    );
    let data = &body["data"];
    assert_eq!(data["messageId"], sent["messageId"]);
    assert_eq!(data["conversationId"], sent["conversationId"]);
    assert_eq!(data["seq"], 1);
    assert_eq!(data["clientMessageId"], "c-1");
    assert_eq!(data["sender"]["type"], "contact");
    assert_eq!(data["sender"]["id"], mark.id.as_str());
    assert!(
        data["sender"].get("name").is_none(),
        "the contact's name: {data}"
    );
    assert_eq!(data["contactId"], mark.id.as_str());
    assert_eq!(data["messengerId"], mark.messenger.as_str());
    assert!(data.get("body").is_none(), "{data}");
    let text = String::from_utf8_lossy(&g.body);
    assert!(!text.contains("diagnosis"), "the body leaked: {text}");
    assert!(
        !text.contains("mark@example.test"),
        "the identity leaked: {text}"
    );

    let log = wait_deliveries(&app, site.id, &id, 1).await;
    assert_eq!(log[0]["type"], "message.created");
    assert_eq!(log[0]["eventId"], body["id"]);
    assert_eq!(log[0]["delivered"], true);
    assert_eq!(log[0]["status"], 200);
}

#[tokio::test]
async fn conversation_events_and_include_body_and_no_other_sites_events() {
    let app = private_app().await;
    let site = app.site("Acme").await;
    let support = site.messenger(json!({})).await;
    let mark = support.contact("mark@example.test").await;
    let agent = site.agent("agent@example.test", "agent").await;
    let receiver = Receiver::start().await;
    let all = [
        "conversation.created",
        "message.created",
        "conversation.closed",
    ];
    hook(&app, site.id, &receiver.url(), &all, true).await;
    // Another site's webhook on every event hears nothing of this site.
    let other = app.site("Other").await;
    let eavesdropper = Receiver::start().await;
    hook(
        &app,
        other.id,
        &eavesdropper.url(),
        &[
            "conversation.created",
            "message.created",
            "conversation.closed",
            "contact.notified",
        ],
        true,
    )
    .await;

    let sent = mark.send("c-1", "hello there").await;
    let conversation = sent["conversationId"].as_str().expect("conversationId");
    let (s, _) = agent.close(conversation).await;
    assert_eq!(s, 200);
    let got = receiver.wait_for(4, Duration::from_secs(10)).await;
    assert_eq!(
        types(&got),
        [
            "conversation.closed",
            "conversation.created",
            "message.created",
            "message.created"
        ]
    );
    let mut ids: Vec<&str> = got
        .iter()
        .map(|g| g.header("confidant-event-id").unwrap_or_default())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "four events, four ids");
    for g in &got {
        let b = g.json();
        match b["type"].as_str().unwrap_or_default() {
            "message.created" => {
                assert_eq!(b["data"]["conversationId"], conversation);
                if b["data"]["sender"]["type"] == "contact" {
                    assert_eq!(b["data"]["body"], "hello there", "includeBody");
                } else {
                    assert_eq!(b["data"]["sender"]["type"], "system");
                    assert!(
                        b["data"]["body"]
                            .as_str()
                            .is_some_and(|t| t.contains("closed"))
                    );
                }
            }
            "conversation.created" | "conversation.closed" => {
                assert_eq!(b["data"]["conversationId"], conversation);
                assert_eq!(b["data"]["contactId"], mark.id.as_str());
                assert_eq!(b["data"]["messengerId"], support.id.as_str());
                assert!(
                    b["data"].get("contact").is_none(),
                    "no contact attributes: {b}"
                );
                if b["type"] == "conversation.closed" {
                    assert_eq!(b["data"]["status"], "closed");
                }
            }
            other => panic!("unexpected event {other}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        eavesdropper.got().is_empty(),
        "another site's webhook got this site's events"
    );
    assert_eq!(receiver.got().len(), 4, "each event once");
}

#[tokio::test]
async fn a_failed_delivery_is_retried_until_a_2xx() {
    let app = private_app().await;
    let site = app.site("Acme").await;
    let mark = site
        .messenger(json!({}))
        .await
        .contact("mark@example.test")
        .await;
    let receiver = Receiver::start().await;
    let (id, secret) = hook(&app, site.id, &receiver.url(), &["message.created"], false).await;
    // A 500, then a connection dropped without an answer, then 200.
    receiver.then(&[Reply::Status(500), Reply::Drop]);
    mark.send("c-1", "hello").await;
    let got = receiver.wait_for(3, Duration::from_secs(20)).await;
    let ids: Vec<&str> = got
        .iter()
        .map(|g| g.header("confidant-event-id").unwrap_or_default())
        .collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "the same event each time: {ids:?}"
    );
    for g in &got {
        assert_eq!(g.body, got[0].body, "the same body each time");
        assert!(signature_ok(
            &secret,
            g.header("confidant-signature").expect("sig"),
            &g.body
        ));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.got().len(), 3, "nothing after the 2xx");
    let log = wait_deliveries(&app, site.id, &id, 3).await;
    let outcomes: Vec<(Value, Value)> = log
        .iter()
        .map(|d| (d["delivered"].clone(), d["status"].clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (json!(true), json!(200)),
            (json!(false), Value::Null),
            (json!(false), json!(500))
        ],
        "{log:?}"
    );
    assert_eq!(log[1]["error"], "the connection failed before an answer");
}

#[tokio::test]
async fn a_deleted_webhook_gets_nothing_more() {
    let app = private_app().await;
    let site = app.site("Acme").await;
    let mark = site
        .messenger(json!({}))
        .await
        .contact("mark@example.test")
        .await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::Status(503));
    let (id, _) = hook(&app, site.id, &receiver.url(), &["message.created"], false).await;
    mark.send("c-1", "hello").await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(delete(&app, OPERATOR, site.id, &id).await.status(), 204);
    mark.send("c-2", "and again").await;
    // Its retries (after 0.5–1 s, then 1–2 s) and the new message: none arrives.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(receiver.got().len(), 1);
}

#[tokio::test]
async fn queued_deliveries_survive_kill_9_and_arrive_after_the_restart() {
    let mut made_the_db = TestApp::spawn().await;
    made_the_db.stop().await;
    let mut server = ServerProcess::start(
        crate::BIN,
        &made_the_db.database_url,
        &[
            "--master-key-file",
            &made_the_db.master_key_file,
            "--allow-private-urls",
            "on",
        ],
    )
    .await;
    let site = server.site("Acme").await;
    let support = site.messenger(json!({})).await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::Status(500));
    hook(
        &server,
        site.id,
        &receiver.url(),
        &["message.created"],
        false,
    )
    .await;
    let mut sent = Vec::new();
    for i in 0..5 {
        let c = support.contact(&format!("c{i}@example.test")).await;
        sent.push(c.send("m", "hello").await["messageId"].clone());
    }
    // Every event was tried (and refused) at least once: their retries are queued.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let event_ids = loop {
        let mut ids: Vec<String> = receiver
            .got()
            .iter()
            .map(|g| {
                g.header("confidant-event-id")
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        ids.sort();
        ids.dedup();
        if ids.len() == 5 {
            break ids;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} events tried",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    server.kill_9();
    receiver.got.lock().expect("lock").clear();
    receiver.always(Reply::Status(200));
    server.restart().await;
    // All arrive (a job claimed when the process died waits for its lease, 60 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut ids: Vec<String> = receiver
            .got()
            .iter()
            .map(|g| {
                g.header("confidant-event-id")
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        ids.sort();
        ids.dedup();
        if ids == event_ids {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after the restart: {ids:?} of {event_ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let data: Vec<Value> = receiver
        .got()
        .iter()
        .map(|g| g.json()["data"]["messageId"].clone())
        .collect();
    for m in &sent {
        assert!(data.contains(m), "{m} was not delivered");
    }
}

#[tokio::test]
async fn a_slow_receiver_holds_up_no_other_delivery() {
    let app = private_app().await;
    let site = app.site("Acme").await;
    let mark = site
        .messenger(json!({}))
        .await
        .contact("mark@example.test")
        .await;
    let slow = Receiver::start().await;
    slow.always(Reply::Slow(8000, 200));
    let fast = Receiver::start().await;
    let (slow_id, _) = hook(&app, site.id, &slow.url(), &["message.created"], false).await;
    hook(&app, site.id, &fast.url(), &["message.created"], false).await;

    mark.send("c-1", "one").await;
    fast.wait_for(1, Duration::from_secs(5)).await;
    // The slow receiver still holds the first event's delivery: the second event is not
    // held behind it (the batch's budget is 2 s, the slow answer takes 8 s).
    let started = std::time::Instant::now();
    mark.send("c-2", "two").await;
    fast.wait_for(2, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the second delivery took {:?}",
        started.elapsed()
    );
    // Both slow deliveries succeed, once each: their jobs collect the outcome, no new POST.
    let log = wait_deliveries_for(&app, site.id, &slow_id, 2, Duration::from_secs(25)).await;
    assert!(log.iter().all(|d| d["delivered"] == true && d["latencyMs"].as_i64().is_some_and(|ms| ms >= 8000)), "{log:?}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(slow.got().len(), 2, "each event once");
    assert_eq!(fast.got().len(), 2);
}
