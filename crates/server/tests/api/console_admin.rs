//! Issue 16, the server parts of the console and admin pages: reopening a closed conversation
//! (the close's Undo) with its live frames and the one-open-conversation rule, the list's
//! `messengerId` filter and messenger label, renaming and deleting a messenger (its tokens,
//! sockets, frame and authorize stop; its conversations stay readable), and field errors in
//! plain words, all at once. Each from the attacker's side too.

use std::time::Duration;

use confidant_testkit::jwt::*;
use confidant_testkit::*;
use serde_json::{Value, json};

async fn patch(http: &Http, path: &str, token: &str, body: &Value) -> (u16, String, Value) {
    let r = http
        .client
        .patch(http.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("PATCH");
    answer(r).await
}

async fn delete(http: &Http, path: &str, token: &str) -> (u16, String) {
    let r = http
        .client
        .delete(http.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("DELETE");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let code = serde_json::from_str::<Value>(&text)
        .map(|v| v["error"]["code"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    (status, code)
}

fn id(v: &Value, field: &str) -> String {
    v[field].as_str().expect(field).to_owned()
}

async fn reopen(agent: &Agent, conversation: &str) -> (u16, String, Value) {
    answer(
        agent
            .post(&format!("/conversations/{conversation}/reopen"), &json!({}))
            .await,
    )
    .await
}

/// The `conversation` frame of `conversation`, skipping everything else.
async fn conversation_frame(socket: &mut Socket, conversation: &str) -> Value {
    loop {
        let f = socket.next_of_type("conversation").await;
        if f["conversation"]["conversationId"] == conversation {
            return f["conversation"].clone();
        }
    }
}

async fn audit_actions(admin: &Agent) -> Vec<Value> {
    let (s, v) = admin.get("/audit?limit=1000").await;
    assert_eq!(s, 200, "{v}");
    v["entries"].as_array().expect("entries").clone()
}

#[tokio::test]
async fn reopen_undoes_a_close_for_agents_and_the_contact() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let support = site.messenger(json!({})).await;
    let agent = site.agent("alice@acme.test", "agent").await;
    let contact = support.contact("mark@acme.test").await;
    let first = contact.send("c1", "hello").await;
    let conv = id(&first, "conversationId");
    let (mut agent_ws, _) = agent.socket().await;
    let (mut contact_ws, _) = contact.socket().await;

    let (s, closed) = agent.close(&conv).await;
    assert_eq!((s, closed["status"].as_str()), (200, Some("closed")));
    assert_eq!(
        conversation_frame(&mut agent_ws, &conv).await["status"],
        "closed"
    );
    assert_eq!(
        conversation_frame(&mut contact_ws, &conv).await["status"],
        "closed"
    );

    let (s, _, opened) = reopen(&agent, &conv).await;
    assert_eq!(s, 200, "{opened}");
    assert_eq!(opened["status"], "open");
    assert_eq!(opened["conversationId"], conv.as_str());
    assert_eq!(opened["messenger"]["name"], "Support");
    // Both sides hear of it.
    assert_eq!(
        conversation_frame(&mut agent_ws, &conv).await["status"],
        "open"
    );
    assert_eq!(
        conversation_frame(&mut contact_ws, &conv).await["status"],
        "open"
    );
    // The thread says who reopened it, after the close's message.
    let messages = agent.messages(&conv, "").await;
    let last = messages.last().expect("a message");
    assert_eq!(last["sender"]["type"], "system", "{last}");
    assert!(
        last["body"]
            .as_str()
            .is_some_and(|b| b.contains("reopened")),
        "{last}"
    );
    assert_eq!(
        seqs(&messages),
        (1..=messages.len() as i64).collect::<Vec<_>>()
    );
    // It lists as open and takes replies from both sides again, in the same conversation.
    let open = agent.conversations("?status=open").await;
    assert_eq!(open["conversations"][0]["conversationId"], conv.as_str());
    agent.send(&conv, "a1", "we are back").await;
    let again = contact.send("c2", "thanks").await;
    assert_eq!(again["conversationId"], conv.as_str());

    // Reopening an open conversation changes nothing and stores nothing.
    let before = agent.messages(&conv, "").await.len();
    let (s, _, same) = reopen(&agent, &conv).await;
    assert_eq!((s, same["status"].as_str()), (200, Some("open")));
    assert_eq!(agent.messages(&conv, "").await.len(), before);
}

#[tokio::test]
async fn reopen_refuses_a_second_open_conversation_and_other_sites() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let support = site.messenger(json!({})).await;
    let agent = site.agent("alice@acme.test", "agent").await;
    let contact = support.contact("mark@acme.test").await;
    let old = id(&contact.send("c1", "hello").await, "conversationId");
    assert_eq!(agent.close(&old).await.0, 200);
    // The customer writes again: a new conversation opens; the old one cannot open beside it.
    let new = id(&contact.send("c2", "me again").await, "conversationId");
    assert_ne!(old, new);
    let (s, code, body) = reopen(&agent, &old).await;
    assert_eq!((s, code.as_str()), (409, "conflict"), "{body}");
    let listed = agent.conversations("?status=open").await;
    assert_eq!(listed["conversations"].as_array().map(Vec::len), Some(1));
    // Once the new one is closed, the old one may open again.
    assert_eq!(agent.close(&new).await.0, 200);
    assert_eq!(reopen(&agent, &old).await.0, 200);

    // Another site's agent, an unknown id, a malformed id.
    let other = app.site("Globex").await;
    let eve = other.agent("eve@globex.test", "admin").await;
    assert_eq!(agent.close(&old).await.0, 200);
    let (s, code, _) = reopen(&eve, &old).await;
    assert_eq!((s, code.as_str()), (404, "not_found"));
    let r = eve
        .http
        .post(
            &format!("/api/v1/sites/{}/conversations/{old}/reopen", site.id),
            Some(&eve.token),
            &json!({}),
        )
        .await;
    assert_eq!(error_code(r).await, (404, "not_found".to_owned()));
    let (s, code, _) = reopen(&agent, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!((s, code.as_str()), (404, "not_found"));
    let (s, code, _) = reopen(&agent, "not-a-uuid").await;
    assert_eq!((s, code.as_str()), (400, "invalid_request"));
    // The failed attempts left it closed.
    let (_, c) = agent.get(&format!("/conversations/{old}")).await;
    assert_eq!(c["status"], "closed");
}

#[tokio::test]
async fn conversations_name_their_messenger_and_filter_by_it() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let support = site.messenger(json!({})).await;
    let sales = site.messenger(json!({})).await;
    let admin = site.agent("admin@acme.test", "admin").await;
    let (s, _, _) = patch(
        &app,
        &format!("/api/v1/sites/{}/messengers/{}", site.id, sales.id),
        &admin.token,
        &json!({"name": "Sales"}),
    )
    .await;
    assert_eq!(s, 200);
    let a = id(
        &support.contact("a@x.test").await.send("1", "hi").await,
        "conversationId",
    );
    let b = id(
        &sales.contact("b@x.test").await.send("1", "hi").await,
        "conversationId",
    );

    let all = admin.conversations("").await;
    let names: Vec<(String, String)> = all["conversations"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| (id(c, "conversationId"), id(&c["messenger"], "name")))
        .collect();
    assert!(names.contains(&(a.clone(), "Support".into())), "{names:?}");
    assert!(names.contains(&(b.clone(), "Sales".into())), "{names:?}");

    let only = admin
        .conversations(&format!("?messengerId={}", sales.id))
        .await;
    let ids: Vec<String> = only["conversations"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| id(c, "conversationId"))
        .collect();
    assert_eq!(ids, vec![b.clone()]);
    assert_eq!(only["conversations"][0]["messenger"]["deleted"], false);

    // A malformed id is a 400 naming the field; another site's messenger lists nothing.
    let (s, code, body) = answer(admin.fetch("/conversations?messengerId=nope").await).await;
    assert_eq!((s, code.as_str()), (400, "invalid_request"));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("messengerId:"))
    );
    let other = app.site("Globex").await;
    let theirs = other.messenger(json!({})).await;
    theirs.contact("c@x.test").await.send("1", "hi").await;
    let none = admin
        .conversations(&format!("?messengerId={}", theirs.id))
        .await;
    assert_eq!(none["conversations"], json!([]));
}

#[tokio::test]
async fn messengers_are_renamed_by_admins_only() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let support = site.messenger(json!({})).await;
    let admin = site.agent("admin@acme.test", "admin").await;
    let agent = site.agent("alice@acme.test", "agent").await;
    let other = app.site("Globex").await;
    let eve = other.agent("eve@globex.test", "admin").await;
    let path = format!("/api/v1/sites/{}/messengers/{}", site.id, support.id);

    let (s, _, renamed) = patch(&app, &path, &admin.token, &json!({"name": "  Help desk "})).await;
    assert_eq!(s, 200, "{renamed}");
    assert_eq!(renamed["name"], "Help desk");
    assert_eq!(renamed["messengerId"], support.id.as_str());
    assert_eq!(
        renamed["security"]["validation"]["sharedToken"],
        Value::Null
    );
    let (_, got) = json_of(app.get(&path, Some(&admin.token)).await).await;
    assert_eq!(got["name"], "Help desk");
    // The frame's config shows the new name at once.
    let (_, config) = json_of(
        app.get(
            &format!(
                "/api/v1/messenger/config?siteId={}&messengerId={}",
                site.id, support.id
            ),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(config["name"], "Help desk");

    // Name rules as on create; an agent, another site's admin, no session.
    let (s, code, body) = patch(&app, &path, &admin.token, &json!({"name": " "})).await;
    assert_eq!((s, code.as_str()), (400, "invalid_request"));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("name:"))
    );
    let (s, code, _) = patch(&app, &path, &admin.token, &json!({"name": "x".repeat(201)})).await;
    assert_eq!((s, code.as_str()), (400, "invalid_request"));
    let (s, code, _) = patch(&app, &path, &admin.token, &json!({"name": 7})).await;
    assert_eq!((s, code.as_str()), (400, "invalid_request"));
    let (s, code, _) = patch(&app, &path, &agent.token, &json!({"name": "Mine"})).await;
    assert_eq!((s, code.as_str()), (403, "forbidden"));
    let (s, _, _) = patch(&app, &path, &eve.token, &json!({"name": "Pwned"})).await;
    assert_eq!(s, 404);
    let theirs = format!("/api/v1/sites/{}/messengers/{}", other.id, support.id);
    let (s, _, _) = patch(&app, &theirs, &eve.token, &json!({"name": "Pwned"})).await;
    assert_eq!(s, 404);
    let (_, got) = json_of(app.get(&path, Some(&admin.token)).await).await;
    assert_eq!(got["name"], "Help desk");

    let entries = audit_actions(&admin).await;
    let renamed: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "messenger.renamed")
        .collect();
    assert_eq!(renamed.len(), 1, "{entries:?}");
    assert_eq!(renamed[0]["target"]["messengerId"], support.id.as_str());
    assert_eq!(renamed[0]["target"]["to"], "Help desk");
    assert_eq!(renamed[0]["target"]["from"], "Support");
}

#[tokio::test]
async fn a_deleted_messenger_stops_working_and_its_conversations_stay() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let support = site.messenger(json!({})).await;
    let keep = site.messenger(json!({})).await;
    let admin = site.agent("admin@acme.test", "admin").await;
    let agent = site.agent("alice@acme.test", "agent").await;
    let other = app.site("Globex").await;
    let eve = other.agent("eve@globex.test", "admin").await;
    let contact = support.contact("mark@acme.test").await;
    let conv = id(&contact.send("c1", "hello").await, "conversationId");
    let path = format!("/api/v1/sites/{}/messengers/{}", site.id, support.id);

    // Not an admin, not this site, not a messenger id.
    assert_eq!(
        delete(&app, &path, &agent.token).await,
        (403, "forbidden".into())
    );
    assert_eq!(delete(&app, &path, &eve.token).await.0, 404);
    let theirs = format!("/api/v1/sites/{}/messengers/{}", other.id, support.id);
    assert_eq!(
        delete(&app, &theirs, &eve.token).await,
        (404, "messenger_not_found".into())
    );
    let bad = format!("/api/v1/sites/{}/messengers/nope", site.id);
    assert_eq!(delete(&app, &bad, &admin.token).await.0, 400);
    assert_eq!(
        contact.send("c2", "still here").await["conversationId"],
        conv.as_str()
    );
    let (mut contact_ws, _) = contact.socket().await;

    assert_eq!(
        delete(&app, &path, &admin.token).await,
        (204, String::new())
    );
    // Its contact's socket closes as logged out; its token, authorize, config and frame stop.
    assert_eq!(
        contact_ws.expect_close(Duration::from_secs(3)).await,
        Some(4401)
    );
    let (s, code) = contact.try_send("c3", "hello?").await;
    assert_eq!(
        (s, code["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let jwt = hs256(SECRET, &json!({"sub": "new@acme.test", "exp": now() + 600}));
    assert_eq!(
        error_code(support.authorize(&jwt).await).await,
        (404, "messenger_not_found".into())
    );
    let config = format!(
        "/api/v1/messenger/config?siteId={}&messengerId={}",
        site.id, support.id
    );
    assert_eq!(
        error_code(app.get(&config, None).await).await,
        (404, "messenger_not_found".into())
    );
    let frame = format!(
        "/messenger/v1/frame?siteId={}&messengerId={}",
        site.id, support.id
    );
    assert_eq!(app.get(&frame, None).await.status(), 404);
    assert_eq!(
        error_code(app.get(&path, Some(&admin.token)).await).await,
        (404, "messenger_not_found".into())
    );
    // It leaves the list; the other messenger stays.
    let (_, list) = json_of(
        app.get(
            &format!("/api/v1/sites/{}/messengers", site.id),
            Some(&agent.token),
        )
        .await,
    )
    .await;
    let ids: Vec<String> = list["messengers"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| id(m, "messengerId"))
        .collect();
    assert_eq!(ids, vec![keep.id.clone()]);

    // Its conversations stay readable by agents, and say the messenger was deleted.
    let (s, c) = agent.get(&format!("/conversations/{conv}")).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["messenger"]["deleted"], true);
    assert_eq!(c["messenger"]["name"], "Support");
    assert_eq!(agent.messages(&conv, "").await.len(), 2);
    let listed = agent
        .conversations(&format!("?messengerId={}", support.id))
        .await;
    assert_eq!(listed["conversations"][0]["conversationId"], conv.as_str());

    // A retry, a rename and a Security change of the deleted messenger: 404.
    assert_eq!(
        delete(&app, &path, &admin.token).await,
        (404, "messenger_not_found".into())
    );
    let (s, code, _) = patch(&app, &path, &admin.token, &json!({"name": "Back"})).await;
    assert_eq!((s, code.as_str()), (404, "messenger_not_found"));
    let r = app
        .put(
            &format!("{path}/security"),
            Some(&admin.token),
            &json!({"validation": {"method": "sharedToken", "sharedToken": null}}),
        )
        .await;
    assert_eq!(error_code(r).await.0, 404);

    let entries = audit_actions(&admin).await;
    let deleted: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "messenger.deleted")
        .collect();
    assert_eq!(deleted.len(), 1, "{entries:?}");
    assert_eq!(deleted[0]["target"]["messengerId"], support.id.as_str());
    assert_eq!(deleted[0]["target"]["name"], "Support");
    let ok = admin.get("/audit/verify").await.1;
    assert_eq!(ok["ok"], true, "{ok}");
}

#[tokio::test]
async fn security_field_errors_are_plain_and_all_named_at_once() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let support = site.messenger(json!({})).await;
    let admin = site.agent("admin@acme.test", "admin").await;
    let r = admin
        .put(
            &format!("/messengers/{}/security", support.id),
            &json!({
                "validation": {"method": "sharedToken", "sharedToken": null},
                "allowedUrls": ["foo", "https://ok.example.com", "https://a.example.com/?q=1", "ftp://x.example"],
                "clockSkewSeconds": 999,
            }),
        )
        .await;
    let (s, code, body) = answer(r).await;
    assert_eq!((s, code.as_str()), (400, "invalid_request"));
    let message = body["error"]["message"].as_str().expect("message");
    for part in [
        "allowedUrls[0]: “foo” is not a web address: it needs https:// or http:// and a host",
        "allowedUrls[2]: “https://a.example.com/?q=1”",
        "allowedUrls[3]: “ftp://x.example”",
        "clockSkewSeconds: must be a whole number from 0 to 300",
    ] {
        assert!(message.contains(part), "{part:?} missing from {message}");
    }
    assert!(!message.contains("allowedUrls[1]"), "{message}");
    assert!(!message.contains("relative URL"), "{message}");
    // Nothing was saved.
    let (_, got) = json_of(
        app.get(
            &format!("/api/v1/sites/{}/messengers/{}", site.id, support.id),
            Some(&admin.token),
        )
        .await,
    )
    .await;
    assert_eq!(got["security"]["clockSkewSeconds"], 60);

    // The webhook and notice forms speak plainly too.
    let (s, _, body) = answer(
        admin
            .post(
                "/webhooks",
                &json!({"url": "foo", "events": ["message.created"]}),
            )
            .await,
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        body["error"]["message"],
        "url: “foo” is not a web address: it needs https:// and a host"
    );
    let (s, _, body) = answer(
        admin
            .put(
                &format!("/messengers/{}/notifications", support.id),
                &json!({"email": {"enabled": true, "linkUrl": "portal"}}),
            )
            .await,
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        body["error"]["message"],
        "email.linkUrl: “portal” is not a web address: it needs https:// and a host"
    );

    // Appearance and canned replies name every bad field at once as well.
    let (s, _, body) = answer(
        admin
            .put(
                &format!("/messengers/{}/appearance", support.id),
                &json!({"color": "blue", "businessHours": {"timeZone": "Europe/Atlantis",
                        "weekly": {"mon": [["17:00", "09:00"]]}}}),
            )
            .await,
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(
        fields_named(&body),
        [
            "color",
            "businessHours.timeZone",
            "businessHours.weekly.mon[0]"
        ],
        "{body}"
    );
    let (s, _, body) = answer(
        admin
            .post(
                "/canned-replies",
                &json!({"shortcut": "Opening Hours", "title": " ", "body": ""}),
            )
            .await,
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(fields_named(&body), ["shortcut", "title", "body"], "{body}");
}
