//! Offline notices by email (CONTRACT §10), against a real SMTP server ([`SmtpSink`]): the
//! settings API, the test email, and the rule (one notice per unread reply to a contact who
//! left; none while connected, without an email attribute, for previews, with notices off),
//! retries when the mail server is down, and a kill -9 between a reply and its notice.

use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use confidant::jobs::{Event, EventSink, EventType};
use confidant_testkit::jwt::{hs256, now};
use confidant_testkit::*;
use serde_json::{Value, json};

const LINK: &str = "https://portal.example.com/messages";
const SECRET_BODY: &str = "Your biopsy result is benign";
const CONTACT_NAME: &str = "Mark Tylor-Unique";
const CONTACT_PHONE: &str = "+1-555-0142-77";
const AGENT_NAME: &str = "Dr. Agnes Quill";

fn notifications_path(site: i64, messenger: &str) -> String {
    format!("/api/v1/sites/{site}/messengers/{messenger}/notifications")
}

/// The server with an SMTP sink, a site with a messenger whose notices are on after
/// `after` seconds, an agent with a distinctive name, and a contact with an email attribute.
struct Mailroom {
    sink: SmtpSink,
    app: TestApp,
    site: Site,
    support: Messenger,
    agent: Agent,
}

impl Mailroom {
    async fn open(after: u32) -> Mailroom {
        Self::open_with(SmtpSink::start().await, after).await
    }

    async fn open_with(sink: SmtpSink, after: u32) -> Mailroom {
        let app = TestApp::spawn_with(|s| {
            s.rate_limits = false;
            s.smtp_url = Some(sink.url());
        })
        .await;
        let site = app.site("Acme Health").await;
        let support = site.messenger(json!({})).await;
        let r = app
            .post(
                &format!("/api/v1/sites/{}/agents", site.id),
                Some(OPERATOR),
                &json!({"email": "agnes@example.test", "password": PASSWORD, "name": AGENT_NAME, "role": "agent"}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let agent = site.login("agnes@example.test").await;
        let room = Mailroom {
            sink,
            app,
            site,
            support,
            agent,
        };
        room.notices(json!({"email": {"enabled": true, "afterSeconds": after, "linkUrl": LINK}}))
            .await;
        room
    }

    async fn notices(&self, body: Value) -> Value {
        let (s, _, v) = answer(
            self.app
                .put(
                    &notifications_path(self.site.id, &self.support.id),
                    Some(OPERATOR),
                    &body,
                )
                .await,
        )
        .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// A contact authorized with `comm100.*` attributes (an email when `email` is given).
    async fn contact(&self, identity: &str, email: Option<&str>, preview: bool) -> Contact {
        let mut claims = json!({"sub": identity, "exp": now() + 600,
            "comm100.name": CONTACT_NAME, "comm100.phone": CONTACT_PHONE});
        if let Some(e) = email {
            claims["comm100.email"] = json!(e);
        }
        let r = self
            .app
            .post(
                "/securemessage/authorize",
                None,
                &json!({"siteId": self.site.id, "messengerId": self.support.id,
                        "contactJwt": hs256(SECRET, &claims), "isPreview": preview}),
            )
            .await;
        let (s, _, v) = answer(r).await;
        assert_eq!(s, 200, "{v}");
        Contact {
            http: self.app.clone(),
            site: self.site.id,
            messenger: self.support.id.clone(),
            identity: identity.to_owned(),
            token: v["accessToken"].as_str().expect("token").to_owned(),
            id: v["contact"]["contactId"].as_str().expect("id").to_owned(),
        }
    }

    /// The contact writes first (it opens the conversation), then leaves; its conversationId.
    async fn conversation_of(&self, contact: &Contact) -> String {
        let m = contact.send("hello-1", "Hello, any news?").await;
        m["conversationId"].as_str().expect("id").to_owned()
    }

    async fn reply(&self, conversation: &str, key: &str) -> Value {
        self.agent.send(conversation, key, SECRET_BODY).await
    }
}

/// Nothing new arrives at the sink for `d`.
async fn quiet_for(sink: &SmtpSink, d: Duration, expected: usize) {
    tokio::time::sleep(d).await;
    assert_eq!(sink.mails().len(), expected, "{:#?}", sink.mails());
}

const WAIT: Duration = Duration::from_secs(15);

/// The `contact.notified` events the job queue hands to its sinks.
#[derive(Default)]
struct NotifiedEvents(Mutex<Vec<Event>>);

#[async_trait]
impl EventSink for NotifiedEvents {
    async fn on_events(&self, events: &[Event]) -> Result<(), String> {
        let mut got = self.0.lock().expect("lock");
        got.extend(
            events
                .iter()
                .filter(|e| e.kind == EventType::ContactNotified)
                .cloned(),
        );
        Ok(())
    }
}

fn assert_no_content(mail: &Mail) {
    let everything = format!("{}\n{:?}", mail.raw, mail.texts());
    for secret in [
        SECRET_BODY,
        "biopsy",
        AGENT_NAME,
        "Agnes",
        CONTACT_NAME,
        CONTACT_PHONE,
        "555-0142",
    ] {
        assert!(
            !everything.contains(secret),
            "the notice holds {secret:?}: {everything}"
        );
    }
}

#[tokio::test]
async fn a_reply_to_a_contact_who_left_is_announced_once_until_read() {
    let room = Mailroom::open(1).await;
    let events = Arc::new(NotifiedEvents::default());
    room.app.server().app().jobs.add_sink(events.clone());
    let mark = room
        .contact("mark", Some("mark.notices@example.test"), false)
        .await;
    let conv = room.conversation_of(&mark).await;
    let (mut agent_socket, _) = room.agent.socket().await;

    let started = Instant::now();
    let reply = room.reply(&conv, "r-1").await;
    let mails = room.sink.wait_for(1, WAIT).await;
    eprintln!(
        "figure: reply → notice at the SMTP server with afterSeconds 1: {:?}",
        started.elapsed()
    );
    assert_eq!(mails.len(), 1, "one notice");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before afterSeconds: {:?}",
        started.elapsed()
    );
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["mark.notices@example.test".to_owned()]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("You have a new secure message")
    );
    assert_eq!(
        mail.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert!(mail.header("Message-ID").is_some_and(|id| id.contains('@')));
    assert!(
        mail.header("From")
            .is_some_and(|f| f.contains("notices@confidant.test"))
    );
    let text = mail.text("text/plain").expect("a text part");
    let html = mail.text("text/html").expect("an html part");
    assert!(text.contains(LINK) && html.contains(LINK), "{text}\n{html}");
    assert!(text.contains("Acme Health"), "{text}");
    assert_no_content(mail);

    // The agents' consoles hear of it, and the conversation shows it after a reload.
    let notified = agent_socket.next_of_type("notified").await;
    assert_eq!(notified["conversationId"], conv.as_str());
    assert_eq!(notified["channel"], "email");
    let listed = room.agent.conversations("?status=open").await;
    let c = &listed["conversations"][0];
    assert_eq!(c["conversationId"], conv.as_str());
    assert_eq!(c["notifiedAt"], notified["notifiedAt"], "{c}");
    let mine = mark.conversations().await;
    assert!(mine["conversations"][0]["notifiedAt"].is_string());

    // contact.notified, for webhooks: when and how, never to whom.
    let deadline = Instant::now() + WAIT;
    while events.0.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = events.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].conversation_id.to_string(), conv);
    assert_eq!(got[0].contact_id.to_string(), mark.id);
    assert_eq!(got[0].seq, reply["seq"].as_i64());
    assert_eq!(
        got[0].data,
        json!({"channel": "email", "notifiedAt": notified["notifiedAt"]})
    );
    assert!(!format!("{got:?}").contains("mark.notices@"), "{got:?}");

    // A second reply before the contact reads: no second notice.
    room.reply(&conv, "r-2").await;
    quiet_for(&room.sink, Duration::from_secs(3), 1).await;

    // The contact reads; a new reply is announced again.
    let r = mark
        .post(
            &format!("/api/v1/messenger/conversations/{conv}/read"),
            &json!({"seq": reply["seq"].as_i64().unwrap() + 1}),
        )
        .await;
    assert_eq!(r.status(), 204);
    room.reply(&conv, "r-3").await;
    let mails = room.sink.wait_for(2, WAIT).await;
    assert_eq!(mails.len(), 2, "a new notice after the read");
    assert_no_content(&mails[1]);
    quiet_for(&room.sink, Duration::from_secs(2), 2).await;
}

#[tokio::test]
async fn a_connected_contact_gets_no_notice_and_connecting_again_resets() {
    let room = Mailroom::open(1).await;
    let mark = room.contact("mark", Some("mark@example.test"), false).await;
    let conv = room.conversation_of(&mark).await;

    // Connected while the reply waits: nothing.
    let (socket, _) = mark.socket().await;
    room.reply(&conv, "r-1").await;
    quiet_for(&room.sink, Duration::from_secs(3), 0).await;
    drop(socket);

    // Gone: the next reply is announced.
    tokio::time::sleep(Duration::from_millis(300)).await;
    room.reply(&conv, "r-2").await;
    assert_eq!(room.sink.wait_for(1, WAIT).await.len(), 1);

    // Not read, but connected again (and gone): the next reply is announced again.
    let (socket, _) = mark.socket().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(socket);
    tokio::time::sleep(Duration::from_millis(300)).await;
    room.reply(&conv, "r-3").await;
    assert_eq!(room.sink.wait_for(2, WAIT).await.len(), 2);
    quiet_for(&room.sink, Duration::from_secs(2), 2).await;
}

#[tokio::test]
async fn no_notice_without_an_email_for_previews_or_with_notices_off() {
    let room = Mailroom::open(1).await;
    let no_email = room.contact("no-email", None, false).await;
    let bad_email = room
        .contact("bad-email", Some("not an address\r\nBcc: x@y.z"), false)
        .await;
    let preview = room
        .contact("previewer", Some("previewer@example.test"), true)
        .await;
    for c in [&no_email, &bad_email, &preview] {
        let conv = room.conversation_of(c).await;
        room.reply(&conv, "r-1").await;
    }
    quiet_for(&room.sink, Duration::from_secs(3), 0).await;

    // Notices off: nothing for a contact who has an address.
    room.notices(json!({"email": {"enabled": false, "afterSeconds": 1, "linkUrl": LINK}}))
        .await;
    let mark = room.contact("mark", Some("mark@example.test"), false).await;
    let conv = room.conversation_of(&mark).await;
    room.reply(&conv, "r-1").await;
    quiet_for(&room.sink, Duration::from_secs(3), 0).await;

    // On again: the same unread reply is announced (the rule looks at what is unread).
    room.notices(json!({"email": {"enabled": true, "afterSeconds": 1, "linkUrl": LINK}}))
        .await;
    room.reply(&conv, "r-2").await;
    let mails = room.sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["mark@example.test".to_owned()]);
}

#[tokio::test]
async fn no_email_without_smtp_and_the_settings_say_so() {
    let desk = Desk::open().await;
    let path = notifications_path(desk.site.id, &desk.support.id);
    let (s, _, v) = answer(desk.app.get(&path, Some(OPERATOR)).await).await;
    assert_eq!(s, 200);
    assert_eq!(v["smtpConfigured"], false);
    let (s, code, _) = answer(
        desk.app
            .post(
                &format!("{path}/test"),
                Some(OPERATOR),
                &json!({"to": "a@example.test"}),
            )
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "conflict"));
}

#[tokio::test]
async fn a_mail_server_that_is_down_delays_the_notice_never_the_send() {
    let room = Mailroom::open_with(SmtpSink::down(), 1).await;
    let mark = room.contact("mark", Some("mark@example.test"), false).await;
    let conv = room.conversation_of(&mark).await;
    let started = Instant::now();
    room.reply(&conv, "r-1").await;
    eprintln!(
        "figure: an agent send while the mail server is down: {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the send waited: {:?}",
        started.elapsed()
    );
    // Down for a few attempts' worth, then up: the notice goes out once.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(room.sink.mails().is_empty());
    room.sink.up().await;
    let mails = room.sink.wait_for(1, Duration::from_secs(90)).await;
    assert_eq!(mails.len(), 1, "delivered after the mail server came back");
    assert_no_content(&mails[0]);
    let conv_now = room.agent.conversations("?status=open").await;
    assert!(conv_now["conversations"][0]["notifiedAt"].is_string());
    quiet_for(&room.sink, Duration::from_secs(2), 1).await;
}

#[tokio::test]
async fn a_permanent_refusal_is_not_retried_and_leaves_no_mark() {
    let room = Mailroom::open(1).await;
    room.sink.set_mode(SinkMode::Permanent);
    let mark = room.contact("mark", Some("mark@example.test"), false).await;
    let conv = room.conversation_of(&mark).await;
    room.reply(&conv, "r-1").await;
    let deadline = Instant::now() + WAIT;
    while room.sink.refused() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(room.sink.refused(), 1);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(room.sink.refused(), 1, "a 5xx is not retried");
    let listed = room.agent.conversations("?status=open").await;
    assert_eq!(listed["conversations"][0]["notifiedAt"], Value::Null);
}

#[tokio::test]
async fn the_settings_api_checks_fields_roles_and_tenants() {
    let room = Mailroom::open(300).await;
    let path = notifications_path(room.site.id, &room.support.id);
    let (s, _, v) = answer(room.app.get(&path, Some(OPERATOR)).await).await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"email": {"enabled": true, "afterSeconds": 300, "linkUrl": LINK,
                         "subject": "You have a new secure message"}, "smtpConfigured": true})
    );

    // PUT replaces: what is absent takes its default.
    let v = room.notices(json!({"email": {"enabled": false}})).await;
    assert_eq!(
        v["email"],
        json!({"enabled": false, "afterSeconds": 300, "linkUrl": null,
               "subject": "You have a new secure message"})
    );
    let v = room
        .notices(json!({"email": {"enabled": true, "afterSeconds": 0, "linkUrl": LINK, "subject": "A message waits"}}))
        .await;
    assert_eq!(v["email"]["afterSeconds"], 0);
    assert_eq!(v["email"]["subject"], "A message waits");

    for (body, field) in [
        (json!({}), "email"),
        (json!({"email": "yes"}), "email"),
        (json!({"email": {}}), "email.enabled"),
        (
            json!({"email": {"enabled": "true", "linkUrl": LINK}}),
            "email.enabled",
        ),
        (json!({"email": {"enabled": true}}), "email.linkUrl"),
        (
            json!({"email": {"enabled": true, "linkUrl": "javascript:alert(1)"}}),
            "email.linkUrl",
        ),
        (
            json!({"email": {"enabled": true, "linkUrl": "http://portal.example.com/"}}),
            "email.linkUrl",
        ),
        (
            json!({"email": {"enabled": true, "linkUrl": LINK, "afterSeconds": 86_401}}),
            "email.afterSeconds",
        ),
        (
            json!({"email": {"enabled": true, "linkUrl": LINK, "afterSeconds": -1}}),
            "email.afterSeconds",
        ),
        (
            json!({"email": {"enabled": true, "linkUrl": LINK, "afterSeconds": "5"}}),
            "email.afterSeconds",
        ),
        (
            json!({"email": {"enabled": true, "linkUrl": LINK, "subject": "a\r\nBcc: x@y.z"}}),
            "email.subject",
        ),
        (
            json!({"email": {"enabled": true, "linkUrl": LINK, "subject": "x".repeat(201)}}),
            "email.subject",
        ),
    ] {
        let (s, code, v) = answer(room.app.put(&path, Some(OPERATOR), &body).await).await;
        assert_eq!((s, code.as_str()), (400, "invalid_request"), "{body}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{body}: {message}");
    }
    // Every bad field at once, each in plain words, so that a form marks them all.
    let (s, code, v) = answer(
        room.app
            .put(
                &path,
                Some(OPERATOR),
                &json!({"email": {"enabled": "on", "afterSeconds": 1.5, "linkUrl": "portal", "subject": "a\nb"}}),
            )
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (400, "invalid_request"), "{v}");
    assert_eq!(
        fields_named(&v),
        [
            "email.enabled",
            "email.afterSeconds",
            "email.linkUrl",
            "email.subject"
        ],
        "{v}"
    );
    assert_eq!(
        v["error"]["message"],
        "email.enabled: must be true or false; \
         email.afterSeconds: must be a whole number of seconds from 0 to 86400; \
         email.linkUrl: “portal” is not a web address: it needs https:// and a host; \
         email.subject: must be one line without control characters"
    );
    // Nothing of the refused bodies was stored.
    let (_, _, v) = answer(room.app.get(&path, Some(OPERATOR)).await).await;
    assert_eq!(v["email"]["subject"], "A message waits");

    // Malformed JSON, a bad path: 400 before any lookup.
    let r = room
        .app
        .client
        .put(room.app.url(&path))
        .bearer_auth(OPERATOR)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (400, "invalid_request".to_owned()));
    let (s, code) = error_code(
        room.app
            .get(
                &format!(
                    "/api/v1/sites/{}/messengers/not-a-uuid/notifications",
                    room.site.id
                ),
                Some(OPERATOR),
            )
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (400, "invalid_request"));

    // Roles: an agent may not read or change them; the site's admin may.
    assert_eq!(
        error_code(room.agent.fetch(&path_in_site(&room)).await)
            .await
            .0,
        403
    );
    let r = room
        .agent
        .put(&path_in_site(&room), &json!({"email": {"enabled": false}}))
        .await;
    assert_eq!(r.status(), 403);
    let admin = room.site.agent("admin@example.test", "admin").await;
    assert_eq!(admin.fetch(&path_in_site(&room)).await.status(), 200);

    // Another site's admin: the messenger does not exist for it.
    let other = room.app.site("Other").await;
    let other_admin = other.agent("admin@other.test", "admin").await;
    for r in [
        other_admin.http.get(&path, Some(&other_admin.token)).await,
        other_admin
            .http
            .put(
                &path,
                Some(&other_admin.token),
                &json!({"email": {"enabled": false}}),
            )
            .await,
        other_admin
            .http
            .post(
                &format!("{path}/test"),
                Some(&other_admin.token),
                &json!({"to": "x@example.test"}),
            )
            .await,
    ] {
        assert_eq!(error_code(r).await.0, 404);
    }
    // Its own site's path with this site's messenger: not found either.
    let cross = notifications_path(other.id, &room.support.id);
    let (s, code) = error_code(other_admin.http.get(&cross, Some(&other_admin.token)).await).await;
    assert_eq!((s, code.as_str()), (404, "messenger_not_found"));
    // Unchanged by all of that.
    let (_, _, v) = answer(room.app.get(&path, Some(OPERATOR)).await).await;
    assert_eq!(v["email"]["subject"], "A message waits");
}

fn path_in_site(room: &Mailroom) -> String {
    format!("/messengers/{}/notifications", room.support.id)
}

#[tokio::test]
async fn the_test_email_goes_out_and_failures_are_reported() {
    let room = Mailroom::open(300).await;
    let path = format!(
        "{}/test",
        notifications_path(room.site.id, &room.support.id)
    );
    let (s, _, v) = answer(
        room.app
            .post(
                &path,
                Some(OPERATOR),
                &json!({"to": "admin.test@example.test"}),
            )
            .await,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"sent": true}));
    let mails = room.sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["admin.test@example.test".to_owned()]);
    assert!(mails[0].header("Subject").unwrap().starts_with("[Test]"));
    assert!(mails[0].text("text/plain").unwrap().contains(LINK));

    for body in [
        json!({}),
        json!({"to": "nobody"}),
        json!({"to": "a@b.co\r\nBcc: x@y.z"}),
        json!({"to": 5}),
    ] {
        let (s, code, _) = answer(room.app.post(&path, Some(OPERATOR), &body).await).await;
        assert_eq!((s, code.as_str()), (400, "invalid_request"), "{body}");
    }
    let r = room
        .agent
        .post(
            &format!("/messengers/{}/notifications/test", room.support.id),
            &json!({"to": "a@example.test"}),
        )
        .await;
    assert_eq!(r.status(), 403);

    room.sink.set_mode(SinkMode::Permanent);
    let (s, code, _) = answer(
        room.app
            .post(
                &path,
                Some(OPERATOR),
                &json!({"to": "refused@example.test"}),
            )
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (503, "unavailable"));
    room.sink.stop();
    let (s, code, _) = answer(
        room.app
            .post(&path, Some(OPERATOR), &json!({"to": "down@example.test"}))
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (503, "unavailable"));
    assert_eq!(room.sink.mails().len(), 1);
}

/// A reply acknowledged just before a kill -9 is still announced, once, after the restart.
#[tokio::test]
async fn kill_9_between_a_reply_and_its_notice_still_sends_one() {
    let sink = SmtpSink::start().await;
    let mut made_the_db = TestApp::spawn().await;
    made_the_db.stop().await;
    let sink_url = sink.url();
    let mut server = ServerProcess::start(
        crate::BIN,
        &made_the_db.database_url,
        &[
            "--master-key-file",
            &made_the_db.master_key_file,
            "--smtp-url",
            &sink_url,
            "--smtp-from",
            SMTP_FROM,
        ],
    )
    .await;
    let site = server.site("Acme Health").await;
    let support = site.messenger(json!({})).await;
    let r = server
        .put(
            &notifications_path(site.id, &support.id),
            Some(OPERATOR),
            &json!({"email": {"enabled": true, "afterSeconds": 2, "linkUrl": LINK}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let jwt = hs256(
        SECRET,
        &json!({"sub": "mark", "exp": now() + 600, "comm100.email": "mark@example.test"}),
    );
    let (s, _, v) = answer(support.authorize(&jwt).await).await;
    assert_eq!(s, 200);
    let token = v["accessToken"].as_str().unwrap().to_owned();
    let (s, _, first) = answer(
        server
            .post(
                "/api/v1/messenger/messages",
                Some(&token),
                &json!({"clientMessageId": "c-1", "body": "hi"}),
            )
            .await,
    )
    .await;
    assert_eq!(s, 201);
    let conv = first["conversationId"].as_str().unwrap().to_owned();
    let (s, _, _) = answer(
        server
            .post(
                &format!("/api/v1/sites/{}/conversations/{conv}/messages", site.id),
                Some(OPERATOR),
                &json!({"clientMessageId": "r-1", "body": SECRET_BODY}),
            )
            .await,
    )
    .await;
    assert_eq!(s, 201);

    // Killed before the notice is due; nothing went out.
    server.kill_9();
    assert!(sink.mails().is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart().await;

    let mails = sink.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(mails.len(), 1, "the notice after the restart");
    assert_no_content(&mails[0]);
    quiet_for(&sink, Duration::from_secs(3), 1).await;
}
