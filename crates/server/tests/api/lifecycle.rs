//! Retention, export and erasure (CONTRACT §14): the retention pass by age (times moved back in
//! the database), run now and hourly on the job queue; a contact's export; a contact's erasure,
//! checked against every row of every table of the schema, its token and socket ending at once
//! (on another process too, over the bus); roles and tenancy from the attacker's side.

use std::path::{Path, PathBuf};
use std::time::Duration;

use confidant_testkit::db;
use confidant_testkit::*;
use serde_json::{Value, json};

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% lab results of mark\ntrailer\n%%EOF\n";
const DAY_MS: i64 = 86_400_000;

/// A server with rate limits off, site "Acme" whose messenger takes PDFs, the contact mark,
/// an agent and an admin.
struct Bench {
    desk: Desk,
    admin: Agent,
}

async fn bench() -> Bench {
    let app = TestApp::spawn_with(|s| s.rate_limits = false).await;
    bench_on(app).await
}

async fn bench_on(app: TestApp) -> Bench {
    let site = app.site("Acme").await;
    let support = site
        .messenger(
            json!({"attachments": {"enabled": true, "maxBytes": 1_000_000,
                                           "allowedTypes": ["application/pdf"]}}),
        )
        .await;
    let mark = support.contact("mark@example.test").await;
    let agent = site.agent("agent@example.test", "agent").await;
    let admin = site.agent("admin@example.test", "admin").await;
    Bench {
        desk: Desk {
            app,
            site,
            support,
            mark,
            agent,
        },
        admin,
    }
}

/// Upload a PDF as the contact: its attachmentId.
async fn upload(c: &Contact, name: &str) -> String {
    let boundary = "confidant-lifecycle-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: application/pdf\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(PDF);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = c
        .http
        .client
        .post(c.http.url("/api/v1/messenger/attachments"))
        .bearer_auth(&c.token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("upload");
    let (s, v) = json_of(r).await;
    assert_eq!(s, 201, "{v}");
    v["attachmentId"].as_str().expect("attachmentId").to_owned()
}

/// The contact sends `body` with the attachment `file`: the stored message.
async fn send_with_file(c: &Contact, cmid: &str, body: &str, file: &str) -> Value {
    let (s, v) = json_of(
        c.post(
            "/api/v1/messenger/messages",
            &json!({"clientMessageId": cmid, "body": body, "attachmentIds": [file]}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v
}

fn str_of(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .to_owned()
}

async fn delete(http: &Http, path: &str, token: &str) -> reqwest::Response {
    http.client
        .delete(http.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("DELETE")
}

fn contact_path(site: i64, contact: &str) -> String {
    format!("/api/v1/sites/{site}/contacts/{contact}")
}

/// Set the site's retention as the operator.
async fn set_retention(app: &TestApp, site: i64, days: Option<i64>) {
    let r = app
        .put(
            &format!("/api/v1/sites/{site}/settings"),
            Some(OPERATOR),
            &json!({"retentionDays": days}),
        )
        .await;
    assert_eq!(r.status(), 200);
}

async fn run_retention(app: &TestApp, site: i64, token: &str) -> (u16, Value) {
    json_of(
        app.post(
            &format!("/api/v1/sites/{site}/retention/run"),
            Some(token),
            &json!({}),
        )
        .await,
    )
    .await
}

/// The site's audit entries (read as the operator).
async fn audit(app: &TestApp, site: i64) -> Vec<Value> {
    let (s, v) = json_of(
        app.get(
            &format!("/api/v1/sites/{site}/audit?limit=1000"),
            Some(OPERATOR),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["entries"].as_array().expect("entries").clone()
}

/// Move a conversation's times `days` back, as if it had been closed (or last changed) then.
async fn age(app: &TestApp, conversation: &str, days: i64) {
    let n = db::execute(
        &app.database_url,
        &format!(
            "UPDATE conversations SET updated_at = updated_at - {}, created_at = created_at - {} \
             WHERE conversation_id = '{conversation}'",
            days * DAY_MS,
            days * DAY_MS
        ),
    )
    .await;
    assert_eq!(n, 1);
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn stored_object(app: &TestApp, attachment: &str) -> bool {
    let dir = app.server().attachments_dir().expect("a local store");
    files_under(&dir)
        .iter()
        .any(|f| f.to_string_lossy().contains(attachment))
}

/// A conversation that mark opens with a message carrying a PDF and that the agent answers and
/// closes: (conversation id, attachment id).
async fn closed_conversation_with_file(b: &Bench, tag: &str) -> (String, String) {
    let d = &b.desk;
    let file = upload(&d.mark, &format!("{tag}.pdf")).await;
    let m = send_with_file(
        &d.mark,
        &format!("{tag}-1"),
        &format!("{tag}: results"),
        &file,
    )
    .await;
    let conv = str_of(&m, "conversationId");
    d.agent.send(&conv, &format!("{tag}-2"), "thanks").await;
    let (s, v) = d.agent.close(&conv).await;
    assert_eq!(s, 200, "{v}");
    (conv, file)
}

#[tokio::test]
async fn retention_deletes_what_was_closed_long_enough_ago_and_nothing_else() {
    let b = bench().await;
    let d = &b.desk;
    let app = &d.app;
    let (old, old_file) = closed_conversation_with_file(&b, "old").await;
    age(app, &old, 40).await;
    let old_messages = d.agent.messages(&old, "").await.len() as u64;
    assert!(old_messages >= 2);
    // An open conversation, however old, stays.
    let open = str_of(
        &d.mark.send("open-1", "still talking").await,
        "conversationId",
    );
    age(app, &open, 400).await;
    // A conversation closed recently stays.
    let ann = d.support.contact("ann@example.test").await;
    let recent = str_of(&ann.send("ann-1", "recent").await, "conversationId");
    d.agent.close(&recent).await;
    age(app, &recent, 29).await;
    // Another site without a retention period keeps its old closed conversations.
    let other = app.site("Other").await;
    let other_support = other.messenger(json!({})).await;
    let other_agent = other.agent("agent@other.test", "agent").await;
    let zed = other_support.contact("zed@example.test").await;
    let theirs = str_of(&zed.send("zed-1", "elsewhere").await, "conversationId");
    other_agent.close(&theirs).await;
    age(app, &theirs, 4000).await;

    let kept = [
        d.agent.messages(&open, "").await.len(),
        d.agent.messages(&recent, "").await.len(),
        other_agent.messages(&theirs, "").await.len(),
    ];
    set_retention(app, d.site.id, Some(30)).await;
    let (s, counts) = run_retention(app, d.site.id, OPERATOR).await;
    assert_eq!(s, 200, "{counts}");
    assert_eq!(
        counts,
        json!({"conversations": 1, "messages": old_messages, "attachments": 1})
    );

    // The old conversation, its messages and its attachment (row and bytes) are gone.
    let (s, _) = d.agent.get(&format!("/conversations/{old}/messages")).await;
    assert_eq!(s, 404);
    let (s, _) = d.agent.get(&format!("/attachments/{old_file}")).await;
    assert_eq!(s, 404);
    assert!(!stored_object(app, &old_file), "the bytes are still stored");
    let left = db::count(
        &app.database_url,
        &format!("SELECT COUNT(*) FROM messages WHERE conversation_id = '{old}'"),
    )
    .await;
    assert_eq!(left, 0);
    // Everything else is still there.
    let now_kept = [
        d.agent.messages(&open, "").await.len(),
        d.agent.messages(&recent, "").await.len(),
        other_agent.messages(&theirs, "").await.len(),
    ];
    assert_eq!(now_kept, kept);
    assert_eq!(
        d.mark.conversations().await["conversations"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // One entry, with the counts, by the operator.
    let entries = audit(app, d.site.id).await;
    let purged: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "retention.purged")
        .collect();
    assert_eq!(purged.len(), 1, "{entries:?}");
    assert_eq!(
        purged[0]["target"],
        json!({"conversations": 1, "messages": old_messages, "attachments": 1, "retentionDays": 30})
    );
    assert_eq!(purged[0]["actor"]["type"], "operator");
    assert!(
        audit(app, other.id)
            .await
            .iter()
            .all(|e| e["action"] != "retention.purged")
    );

    // Run again: nothing left to delete, and the run is recorded all the same.
    let (s, counts) = run_retention(app, d.site.id, OPERATOR).await;
    assert_eq!(s, 200);
    assert_eq!(
        counts,
        json!({"conversations": 0, "messages": 0, "attachments": 0})
    );
    let entries = audit(app, d.site.id).await;
    let last = entries.last().expect("an entry");
    assert_eq!(last["action"], "retention.purged");
    assert_eq!(last["target"]["conversations"], 0);

    // retentionDays 0 purges every closed conversation, however recent.
    set_retention(app, d.site.id, Some(0)).await;
    let (s, counts) = run_retention(app, d.site.id, OPERATOR).await;
    assert_eq!(s, 200);
    assert_eq!(counts["conversations"], 1, "{counts}");
    let (s, _) = d
        .agent
        .get(&format!("/conversations/{recent}/messages"))
        .await;
    assert_eq!(s, 404);
    assert_eq!(d.agent.messages(&open, "").await.len(), kept[0]);
    let verify = json_of(
        app.get(
            &format!("/api/v1/sites/{}/audit/verify", d.site.id),
            Some(OPERATOR),
        )
        .await,
    )
    .await;
    assert_eq!(verify.1["ok"], true, "{:?}", verify);
}

#[tokio::test]
async fn retention_run_is_the_operators_alone() {
    let b = bench().await;
    let d = &b.desk;
    let app = &d.app;
    let (s, v) = run_retention(app, d.site.id, &b.admin.token).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("forbidden")));
    let (s, _) = run_retention(app, d.site.id, &d.agent.token).await;
    assert_eq!(s, 403);
    let other = app.site("Other").await;
    let other_admin = other.agent("admin@other.test", "admin").await;
    let (s, _) = run_retention(app, d.site.id, &other_admin.token).await;
    assert_eq!(s, 404);
    let (s, _) = run_retention(app, 99_999, OPERATOR).await;
    assert_eq!(s, 404);
    let (s, v) = run_retention(app, 0, OPERATOR).await;
    assert!(s == 404 || s == 400, "{s} {v}");
    let r = app
        .post(
            "/api/v1/sites/not-a-site/retention/run",
            Some(OPERATOR),
            &json!({}),
        )
        .await;
    assert_eq!(error_code(r).await, (400, "invalid_request".to_owned()));
    let (s, _) = run_retention(app, d.site.id, "not-a-token").await;
    assert_eq!(s, 401);
    // With no retention period, a run deletes nothing and says so.
    let (conv, _) = closed_conversation_with_file(&b, "kept").await;
    age(app, &conv, 4000).await;
    let before = d.agent.messages(&conv, "").await.len();
    let (s, counts) = run_retention(app, d.site.id, OPERATOR).await;
    assert_eq!(s, 200);
    assert_eq!(
        counts,
        json!({"conversations": 0, "messages": 0, "attachments": 0})
    );
    assert_eq!(d.agent.messages(&conv, "").await.len(), before);
    let entries = audit(app, d.site.id).await;
    let last = entries.last().expect("an entry");
    assert_eq!(last["action"], "retention.purged");
    assert_eq!(last["target"]["retentionDays"], Value::Null);
}

#[tokio::test]
async fn the_hourly_pass_runs_on_the_job_queue_once_per_database() {
    let b = bench().await;
    let d = &b.desk;
    let app = &d.app;
    // Queued at start, once (a second process on the same database queues nothing new).
    let mut peer = app.spawn_peer(|s| s.rate_limits = false).await;
    let queued = |sql: &'static str| db::count(&app.database_url, sql);
    assert_eq!(
        queued("SELECT COUNT(*) FROM jobs WHERE kind = 'retention'").await,
        1
    );
    let hour = 3_600_000;
    let due_in =
        queued("SELECT MAX(run_at) - CAST(0 AS BIGINT) FROM jobs WHERE kind = 'retention'").await
            - jwt::now() * 1000;
    assert!(due_in <= hour + 5_000, "due in {due_in} ms");

    // (The peer keeps its attachment bytes in a directory of its own: stop it, so that the
    // pass runs where the bytes are.)
    peer.stop().await;
    let (conv, file) = closed_conversation_with_file(&b, "hourly").await;
    age(app, &conv, 3).await;
    set_retention(app, d.site.id, Some(2)).await;
    // The hour is up.
    db::execute(
        &app.database_url,
        "UPDATE jobs SET run_at = 0 WHERE kind = 'retention'",
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (s, _) = d
            .agent
            .get(&format!("/conversations/{conv}/messages"))
            .await;
        if s == 404 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pass did not run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // It queued itself again, an hour on.
    let next = queued("SELECT MIN(run_at) FROM jobs WHERE kind = 'retention'").await;
    assert!(next > jwt::now() * 1000 + hour - 60_000);
    assert_eq!(
        queued("SELECT COUNT(*) FROM jobs WHERE kind = 'retention'").await,
        1
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let entry = loop {
        let entries = audit(app, d.site.id).await;
        if let Some(e) = entries.iter().find(|e| e["action"] == "retention.purged") {
            break e.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no entry");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(entry["actor"], json!({"type": "system"}));
    assert_eq!(entry["target"]["conversations"], 1);
    assert_eq!(entry["target"]["attachments"], 1);
    assert_eq!(entry["target"]["retentionDays"], 2);
    // The bytes go right after the rows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while stored_object(app, &file) {
        assert!(tokio::time::Instant::now() < deadline, "the bytes stayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_big_purge_goes_in_batches_and_counts_every_message() {
    let b = bench().await;
    let d = &b.desk;
    let app = &d.app;
    // 2,600 messages (more than one batch of 2,000) in one closed conversation, written
    // straight into the database as the send path would have (the test is about the delete).
    let conv = str_of(&d.mark.send("big-1", "first").await, "conversationId");
    let sender = d.mark.id.clone();
    let mut values = Vec::new();
    for seq in 2..=2600 {
        values.push(format!(
            "('{}', '{conv}', {seq}, 'contact', '{sender}', 'mark', 'x', NULL, 0)",
            uuid_like(seq)
        ));
    }
    db::execute(
        &app.database_url,
        &format!(
            "INSERT INTO messages (message_id, conversation_id, seq, sender_type, sender_id, \
             sender_name, body, client_message_id, created_at) VALUES {}",
            values.join(", ")
        ),
    )
    .await;
    // (SQLite's trigger moves last_seq with such an insert; PostgreSQL's send path does it.)
    db::execute(
        &app.database_url,
        &format!("UPDATE conversations SET last_seq = 2600 WHERE conversation_id = '{conv}'"),
    )
    .await;
    let (s, v) = d.agent.close(&conv).await;
    assert_eq!(s, 200, "{v}");
    age(app, &conv, 10).await;
    let stored = db::count(&app.database_url, "SELECT COUNT(*) FROM messages").await;
    assert!(stored >= 2600, "{stored}");
    set_retention(app, d.site.id, Some(1)).await;
    let (s, counts) = run_retention(app, d.site.id, OPERATOR).await;
    assert_eq!(s, 200, "{counts}");
    assert_eq!(counts["conversations"], 1);
    assert_eq!(counts["messages"], stored);
    let left = db::count(&app.database_url, "SELECT COUNT(*) FROM messages").await;
    assert_eq!(left, 0);
}

/// The code the socket closes with within 2 seconds (events before the close are skipped).
async fn close_code(socket: &mut Socket) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match socket.next_within(left).await {
            Got::Closed(code) => return code,
            Got::Json(_) => {}
        }
    }
}

/// A UUID-shaped id made from `n`.
fn uuid_like(n: i64) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

#[tokio::test]
async fn export_holds_the_contacts_data_in_clear_for_admins_only() {
    let b = bench().await;
    let d = &b.desk;
    let app = &d.app;
    let (first, file) = closed_conversation_with_file(&b, "exp").await;
    let second = str_of(
        &d.mark.send("exp-3", "a new question").await,
        "conversationId",
    );
    let path = format!("{}/export", contact_path(d.site.id, &d.mark.id));

    let r = app.get(&path, Some(&b.admin.token)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-disposition"],
        format!("attachment; filename=\"contact-{}.json\"", d.mark.id).as_str()
    );
    let export: Value = r.json().await.expect("json");
    assert_eq!(export["contact"]["contactId"], d.mark.id.as_str());
    assert_eq!(export["contact"]["identity"], "mark@example.test");
    let conversations = export["conversations"].as_array().expect("conversations");
    let ids: Vec<&str> = conversations
        .iter()
        .map(|c| c["conversationId"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![first.as_str(), second.as_str()]);
    assert_eq!(conversations[0]["status"], "closed");
    assert_eq!(conversations[1]["status"], "open");
    let messages = conversations[0]["messages"].as_array().expect("messages");
    assert_eq!(
        seqs(messages),
        (1..=messages.len() as i64).collect::<Vec<_>>()
    );
    assert_eq!(messages[0]["body"], "exp: results");
    assert_eq!(messages[0]["sender"]["type"], "contact");
    assert_eq!(
        messages[0]["attachments"],
        json!([{"attachmentId": file, "filename": "exp.pdf", "contentType": "application/pdf",
                "size": PDF.len()}])
    );
    assert_eq!(messages[1]["body"], "thanks");
    assert_eq!(conversations[1]["messages"][0]["body"], "a new question");

    // The operator may; an agent may not; another site's admin and contact ids are unknown.
    assert_eq!(app.get(&path, Some(OPERATOR)).await.status(), 200);
    let r = app.get(&path, Some(&d.agent.token)).await;
    assert_eq!(error_code(r).await, (403, "forbidden".to_owned()));
    let other = app.site("Other").await;
    let other_admin = other.agent("admin@other.test", "admin").await;
    assert_eq!(app.get(&path, Some(&other_admin.token)).await.status(), 404);
    let zed = other
        .messenger(json!({}))
        .await
        .contact("zed@example.test")
        .await;
    let theirs = format!("{}/export", contact_path(d.site.id, &zed.id));
    assert_eq!(app.get(&theirs, Some(&b.admin.token)).await.status(), 404);
    let unknown = format!("{}/export", contact_path(d.site.id, &uuid_like(7)));
    assert_eq!(app.get(&unknown, Some(OPERATOR)).await.status(), 404);
    let bad = format!("{}/export", contact_path(d.site.id, "not-a-uuid"));
    assert_eq!(
        error_code(app.get(&bad, Some(OPERATOR)).await).await,
        (400, "invalid_request".to_owned())
    );
    assert_eq!(app.get(&path, None).await.status(), 401);

    // Recorded with the contact id alone, once per export made.
    let exported: Vec<Value> = audit(app, d.site.id)
        .await
        .into_iter()
        .filter(|e| e["action"] == "contact.exported")
        .collect();
    assert_eq!(exported.len(), 2);
    assert_eq!(exported[0]["target"], json!({"contactId": d.mark.id}));
    assert_eq!(exported[0]["actor"]["type"], "agent");
    assert_eq!(exported[1]["actor"]["type"], "operator");
}

/// Everything of mark that must not survive the erasure: (contact id, other needles).
struct Traces {
    contact: String,
    others: Vec<String>,
}

impl Traces {
    fn found_in(&self, row: &str) -> bool {
        row.contains(&self.contact) || self.others.iter().any(|n| row.contains(n.as_str()))
    }
}

#[tokio::test]
async fn erasure_leaves_no_row_of_the_contact_in_any_table() {
    let b = bench().await;
    let d = &b.desk;
    let app = &d.app;
    let mark = &d.mark;
    let (mut socket, _) = mark.socket().await;
    let (closed, file1) = closed_conversation_with_file(&b, "gdpr").await;
    let file2 = upload(mark, "open.pdf").await;
    let m = send_with_file(mark, "gdpr-3", "second question", &file2).await;
    let open = str_of(&m, "conversationId");
    d.agent.send(&open, "gdpr-4", "an answer").await;
    // An upload no message names yet, and a notice job of the open conversation queued for later.
    let pending = upload(mark, "pending.pdf").await;
    db::execute(
        &app.database_url,
        &format!(
            "INSERT INTO jobs (kind, site_id, job_key, payload, run_at, attempts, created_at) \
             VALUES ('notice', {}, 'notice:{open}', '{{\"conversationId\":\"{open}\"}}', \
             {}, 0, 0)",
            d.site.id,
            i64::MAX / 2
        ),
    )
    .await;
    // A preview conversation of the same contact.
    let preview = d.support.named_contact("mark@example.test", true).await;
    let previewed = str_of(
        &preview.send("gdpr-p", "preview hello").await,
        "conversationId",
    );
    // Ann, another contact of the site, is not touched.
    let ann = d.support.contact("ann@example.test").await;
    let ann_conv = str_of(&ann.send("ann-1", "ann's question").await, "conversationId");
    d.agent.send(&ann_conv, "ann-2", "ann's answer").await;
    // An export first: its entry may name the contact id, nothing else.
    let export = format!("{}/export", contact_path(d.site.id, &mark.id));
    assert_eq!(app.get(&export, Some(&b.admin.token)).await.status(), 200);

    let mut message_ids = Vec::new();
    for conv in [&closed, &open] {
        for m in d.agent.messages(conv, "").await {
            message_ids.push(str_of(&m, "messageId"));
        }
    }
    for m in preview.messages(&previewed, "").await {
        message_ids.push(str_of(&m, "messageId"));
    }
    let traces = Traces {
        contact: mark.id.clone(),
        others: [
            vec![
                mark.identity.clone(),
                closed.clone(),
                open.clone(),
                previewed.clone(),
            ],
            vec![file1.clone(), file2.clone(), pending.clone()],
            message_ids,
        ]
        .concat(),
    };
    let before = db::every_row(&app.database_url).await;
    for t in [
        "contacts",
        "conversations",
        "messages",
        "attachments",
        "jobs",
    ] {
        assert!(
            before
                .iter()
                .any(|(table, row)| table == t && traces.found_in(row)),
            "the test meant to show {t} emptied of mark, but it held nothing of mark before"
        );
    }

    let r = delete(app, &contact_path(d.site.id, &mark.id), &b.admin.token).await;
    assert_eq!(r.status(), 204);

    // The token and the socket end at once.
    let (s, v) = mark.get("/api/v1/messenger/conversations").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(mark.try_send("after", "am I gone?").await.0, 401);
    assert_eq!(close_code(&mut socket).await, Some(4401));
    // A new socket with the token is refused.
    let mut again = Socket::connect(&app.ws_url("/api/v1/messenger/ws")).await;
    again
        .send(json!({"type": "auth", "token": mark.token}))
        .await;
    assert_eq!(again.expect_close(Duration::from_secs(2)).await, Some(4401));

    // No row of any table names mark (the audit log may hold the contact id alone).
    let after = db::every_row(&app.database_url).await;
    assert!(after.len() >= 10, "the dump read {} rows", after.len());
    for (table, row) in &after {
        for needle in &traces.others {
            assert!(
                !row.contains(needle.as_str()),
                "{table} still holds {needle}: {row}"
            );
        }
        if !table.starts_with("audit_") {
            assert!(
                !row.contains(&traces.contact),
                "{table} still names the contact: {row}"
            );
        }
    }
    for e in audit(app, d.site.id).await {
        let text = e.to_string();
        if text.contains(&traces.contact) {
            assert!(
                e["action"] == "contact.erased" || e["action"] == "contact.exported",
                "{e}"
            );
            assert_eq!(e["target"], json!({"contactId": traces.contact}));
        }
        for needle in &traces.others {
            assert!(
                !text.contains(needle.as_str()),
                "the audit log holds {needle}: {e}"
            );
        }
    }
    let erased: Vec<Value> = audit(app, d.site.id)
        .await
        .into_iter()
        .filter(|e| e["action"] == "contact.erased")
        .collect();
    assert_eq!(erased.len(), 1);
    assert_eq!(erased[0]["actor"]["email"], "admin@example.test");
    // The bytes are gone from the attachment store.
    for f in [&file1, &file2, &pending] {
        assert!(!stored_object(app, f), "the bytes of {f} are still stored");
    }

    // Ann is untouched.
    assert_eq!(ann.messages(&ann_conv, "").await.len(), 2);
    assert_eq!(d.agent.messages(&ann_conv, "").await.len(), 2);
    // A new authorize of the same identity is a new contact with no history.
    let back = d.support.contact("mark@example.test").await;
    assert_ne!(back.id, mark.id);
    assert_eq!(back.conversations().await["conversations"], json!([]));
    let (s, v) = d.agent.get(&format!("/contacts/{}", back.id)).await;
    assert_eq!(s, 200, "{v}");
    // Erased once: a second erasure finds nothing.
    let r = delete(app, &contact_path(d.site.id, &mark.id), &b.admin.token).await;
    assert_eq!(r.status(), 404);
    let verify = json_of(
        app.get(
            &format!("/api/v1/sites/{}/audit/verify", d.site.id),
            Some(OPERATOR),
        )
        .await,
    )
    .await;
    assert_eq!(verify.1["ok"], true, "{:?}", verify);
}

#[tokio::test]
async fn erasure_is_for_admins_and_the_operator_of_the_contacts_own_site() {
    let b = bench().await;
    let d = &b.desk;
    let app = &d.app;
    let path = contact_path(d.site.id, &d.mark.id);
    let r = delete(app, &path, &d.agent.token).await;
    assert_eq!(error_code(r).await, (403, "forbidden".to_owned()));
    let other = app.site("Other").await;
    let other_admin = other.agent("admin@other.test", "admin").await;
    assert_eq!(delete(app, &path, &other_admin.token).await.status(), 404);
    // The contact under another site's path is unknown there, even to the operator.
    let elsewhere = contact_path(other.id, &d.mark.id);
    assert_eq!(delete(app, &elsewhere, OPERATOR).await.status(), 404);
    assert_eq!(
        delete(app, &contact_path(99_999, &d.mark.id), OPERATOR)
            .await
            .status(),
        404
    );
    assert_eq!(
        error_code(delete(app, &contact_path(d.site.id, "nope"), OPERATOR).await).await,
        (400, "invalid_request".to_owned())
    );
    assert_eq!(delete(app, &path, "bad-token").await.status(), 401);
    // Nothing happened to mark meanwhile.
    assert_eq!(d.mark.conversations().await["conversations"], json!([]));
    d.mark.send("still-here", "hello").await;
    // The operator may.
    assert_eq!(delete(app, &path, OPERATOR).await.status(), 204);
    let entries = audit(app, d.site.id).await;
    let last = entries.last().expect("an entry");
    assert_eq!(last["action"], "contact.erased");
    assert_eq!(last["actor"], json!({"type": "operator"}));
    assert_eq!(last["target"], json!({"contactId": d.mark.id}));
}

#[tokio::test]
async fn sends_racing_an_erasure_leave_no_orphan() {
    let b = bench().await;
    let d = &b.desk;
    let app = &d.app;
    let mark = d.mark.clone();
    d.mark.send("race-0", "first").await;
    let sender = tokio::spawn(async move {
        for i in 1..200 {
            let (s, _) = mark.try_send(&format!("race-{i}"), "racing").await;
            if s == 401 {
                return i;
            }
        }
        200
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = delete(app, &contact_path(d.site.id, &d.mark.id), &b.admin.token).await;
    assert_eq!(r.status(), 204);
    let stopped_at = sender.await.expect("sender");
    assert!(stopped_at < 200, "the sends never stopped");
    let orphans = db::count(
        &app.database_url,
        &format!(
            "SELECT COUNT(*) FROM conversations WHERE contact_id = '{}'",
            d.mark.id
        ),
    )
    .await;
    assert_eq!(orphans, 0);
    let orphan_messages = db::count(
        &app.database_url,
        "SELECT COUNT(*) FROM messages WHERE conversation_id NOT IN \
         (SELECT conversation_id FROM conversations)",
    )
    .await;
    assert_eq!(orphan_messages, 0);
}

#[tokio::test]
async fn an_erased_contacts_token_and_socket_end_on_every_process() {
    if !process::nats_installed("two processes over NATS") {
        return;
    }
    let nats = Nats::start();
    let (a, node_b) = TestApp::two_nodes(&nats).await;
    let b = bench_on(a).await;
    let d = &b.desk;
    // Mark talks to node B: its token is cached there, its socket open there.
    let mark_b = Contact {
        http: Http::clone(&node_b),
        ..d.mark.clone()
    };
    mark_b.send("b-1", "via B").await;
    let (mut socket, _) = mark_b.socket().await;
    assert_eq!(
        mark_b.conversations().await["conversations"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let r = delete(&d.app, &contact_path(d.site.id, &d.mark.id), &b.admin.token).await;
    assert_eq!(r.status(), 204);
    let erased_at = tokio::time::Instant::now();
    assert_eq!(close_code(&mut socket).await, Some(4401));
    assert!(erased_at.elapsed() < Duration::from_secs(2));
    loop {
        let (s, _) = mark_b.get("/api/v1/messenger/conversations").await;
        if s == 401 {
            break;
        }
        assert!(
            erased_at.elapsed() < Duration::from_secs(2),
            "node B still takes the erased contact's token"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A fresh authorize on node B makes a new contact.
    let back = node_b
        .messenger_of(d.site.id, &d.support.id)
        .contact("mark@example.test")
        .await;
    assert_ne!(back.id, d.mark.id);
    assert_eq!(back.conversations().await["conversations"], json!([]));
}
