//! The agent workflow (CONTRACT §16): assignment by role and tenant, the `conversation` frame
//! reaching the site's agent sockets (and no other site's), unread counts following the
//! contact's sends and the agents' read marker, paging by `updatedAt` cursor (ties included),
//! a contact's history across closed conversations, and canned replies with their audit
//! entries.

use std::collections::HashSet;

use confidant_testkit::*;
use serde_json::{Value, json};

/// A site with a messenger, an admin and two agents, and a second site with its own admin
/// and agent (the attacker's side).
struct Floor {
    app: TestApp,
    site: Site,
    support: Messenger,
    admin: Agent,
    alice: Agent,
    bob: Agent,
    alice_id: String,
    bob_id: String,
    other: Site,
    other_admin: Agent,
    other_agent_id: String,
}

impl Floor {
    async fn open() -> Floor {
        let app = TestApp::spawn_with(|s| s.rate_limits = false).await;
        let site = app.site("Acme").await;
        let support = site.messenger(json!({})).await;
        let admin = site.agent("admin@acme.test", "admin").await;
        let alice_id = id_of(&site.create_agent("alice@acme.test", "agent").await);
        let bob_id = id_of(&site.create_agent("bob@acme.test", "agent").await);
        let alice = site.login("alice@acme.test").await;
        let bob = site.login("bob@acme.test").await;
        let other = app.site("Globex").await;
        let other_admin = other.agent("admin@globex.test", "admin").await;
        let other_agent_id = id_of(&other.create_agent("eve@globex.test", "agent").await);
        Floor {
            app,
            site,
            support,
            admin,
            alice,
            bob,
            alice_id,
            bob_id,
            other,
            other_admin,
            other_agent_id,
        }
    }

    /// A contact writes `n` messages; its conversationId.
    async fn conversation(&self, identity: &str, n: usize) -> (Contact, String) {
        let contact = self.support.contact(identity).await;
        let mut id = String::new();
        for i in 0..n {
            let m = contact
                .send(&format!("m-{i}"), &format!("message {i}"))
                .await;
            id = m["conversationId"].as_str().expect("id").to_owned();
        }
        (contact, id)
    }
}

fn id_of(agent: &Value) -> String {
    agent["agentId"].as_str().expect("agentId").to_owned()
}

async fn assign(agent: &Agent, conversation: &str, body: Value) -> (u16, String, Value) {
    answer(
        agent
            .post(&format!("/conversations/{conversation}/assign"), &body)
            .await,
    )
    .await
}

async fn delete(http: &Http, path: &str, token: &str) -> u16 {
    http.client
        .delete(http.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("DELETE")
        .status()
        .as_u16()
}

/// The conversationIds of a list answer.
fn ids(list: &Value) -> Vec<String> {
    list["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .map(|c| c["conversationId"].as_str().expect("id").to_owned())
        .collect()
}

/// The one conversation `id` of a list answer.
fn find<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .find(|c| c["conversationId"] == id)
        .unwrap_or_else(|| panic!("{id} not in {list}"))
}

#[tokio::test]
async fn assignment_follows_the_roles_and_stays_within_the_site() {
    let f = Floor::open().await;
    let (_, conv) = f.conversation("mark@example.test", 1).await;

    // Unassigned at first, in every agent-side shape.
    let list = f.alice.conversations("").await;
    assert_eq!(find(&list, &conv)["assignee"], Value::Null);
    assert_eq!(find(&list, &conv)["unreadCount"], 1);

    // An agent cannot hand work to someone else.
    let (s, code, _) = assign(&f.alice, &conv, json!({"agentId": f.bob_id})).await;
    assert_eq!((s, code.as_str()), (403, "forbidden"));

    // It can take it.
    let (s, _, v) = assign(&f.alice, &conv, json!({"agentId": f.alice_id})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["assignee"],
        json!({"agentId": f.alice_id, "name": "alice@acme.test"})
    );
    assert_eq!(v["conversationId"], conv.as_str());
    assert_eq!(v["contact"]["identity"], "mark@example.test");
    assert_eq!(v["unreadCount"], 1);

    // Another agent cannot unassign it, but may take it over (assigning to itself).
    let (s, code, _) = assign(&f.bob, &conv, json!({"agentId": null})).await;
    assert_eq!((s, code.as_str()), (403, "forbidden"));
    let (s, _, v) = assign(&f.bob, &conv, json!({"agentId": f.bob_id})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["assignee"]["agentId"], f.bob_id.as_str());
    let (s, code, _) = assign(&f.alice, &conv, json!({"agentId": null})).await;
    assert_eq!((s, code.as_str()), (403, "forbidden"));
    // Its assignee may let it go.
    let (s, _, v) = assign(&f.bob, &conv, json!({"agentId": null})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["assignee"], Value::Null);

    // The admin and the operator assign anyone of the site.
    let (s, _, v) = assign(&f.admin, &conv, json!({"agentId": f.alice_id})).await;
    assert_eq!(
        (s, v["assignee"]["agentId"].clone()),
        (200, json!(f.alice_id))
    );
    let (s, _, v) = answer(
        f.app
            .post(
                &format!("/api/v1/sites/{}/conversations/{conv}/assign", f.site.id),
                Some(OPERATOR),
                &json!({"agentId": f.bob_id}),
            )
            .await,
    )
    .await;
    assert_eq!(
        (s, v["assignee"]["agentId"].clone()),
        (200, json!(f.bob_id))
    );

    // Bad agent ids: another site's, unknown, malformed, missing, of the wrong type.
    for body in [
        json!({"agentId": f.other_agent_id}),
        json!({"agentId": uuid::Uuid::new_v4().to_string()}),
        json!({"agentId": "not-an-id"}),
        json!({}),
        json!({"agentId": 42}),
    ] {
        let (s, code, v) = assign(&f.admin, &conv, body.clone()).await;
        assert_eq!((s, code.as_str()), (400, "invalid_request"), "{body} → {v}");
    }
    // Nothing changed.
    let v = f.admin.conversations("").await;
    assert_eq!(find(&v, &conv)["assignee"]["agentId"], f.bob_id.as_str());

    // Another site's admin: the conversation does not exist for it, through either site.
    let (s, code, _) = assign(&f.other_admin, &conv, json!({"agentId": null})).await;
    assert_eq!((s, code.as_str()), (404, "not_found"));
    let (s, code, _) = answer(
        f.other_admin
            .http
            .post(
                &format!("/api/v1/sites/{}/conversations/{conv}/assign", f.site.id),
                Some(&f.other_admin.token),
                &json!({"agentId": null}),
            )
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (404, "not_found"));
    let (s, code, _) = answer(
        f.app
            .post(
                &format!("/api/v1/sites/{}/conversations/{conv}/assign", f.other.id),
                Some(OPERATOR),
                &json!({"agentId": null}),
            )
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (404, "not_found"));
    let (s, code, _) = assign(
        &f.admin,
        &uuid::Uuid::new_v4().to_string(),
        json!({"agentId": null}),
    )
    .await;
    assert_eq!((s, code.as_str()), (404, "not_found"));
}

#[tokio::test]
async fn lists_filter_by_assignee_and_keep_a_deleted_agents_name() {
    let f = Floor::open().await;
    let (_, a) = f.conversation("a@example.test", 1).await;
    let (_, b) = f.conversation("b@example.test", 1).await;
    let (_, c) = f.conversation("c@example.test", 1).await;
    assert_eq!(
        assign(&f.alice, &a, json!({"agentId": f.alice_id})).await.0,
        200
    );
    assert_eq!(
        assign(&f.admin, &b, json!({"agentId": f.bob_id})).await.0,
        200
    );

    let set = |v: &Value| ids(v).into_iter().collect::<HashSet<_>>();
    let mine = f.alice.conversations("?assignee=me").await;
    assert_eq!(set(&mine), HashSet::from([a.clone()]));
    assert_eq!(mine["next"], Value::Null);
    let bobs = f
        .alice
        .conversations(&format!("?assignee={}", f.bob_id))
        .await;
    assert_eq!(set(&bobs), HashSet::from([b.clone()]));
    let none = f.alice.conversations("?assignee=none").await;
    assert_eq!(set(&none), HashSet::from([c.clone()]));
    let all = f.alice.conversations("").await;
    assert_eq!(set(&all), HashSet::from([a.clone(), b.clone(), c.clone()]));
    // The admin has nothing of its own.
    assert_eq!(
        ids(&f.admin.conversations("?assignee=me").await),
        Vec::<String>::new()
    );

    for q in [
        "?assignee=someone",
        "?contactId=nope",
        "?after=nope",
        "?after=12.nope",
        "?limit=0",
        "?status=maybe",
    ] {
        let (s, code) = error_code(f.alice.fetch(&format!("/conversations{q}")).await).await;
        assert_eq!((s, code.as_str()), (400, "invalid_request"), "{q}");
    }
    // The operator is nobody's "me".
    let (s, code) = error_code(
        f.app
            .get(
                &format!("/api/v1/sites/{}/conversations?assignee=me", f.site.id),
                Some(OPERATOR),
            )
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (403, "forbidden"));

    // Deleting bob leaves his conversation assigned, under his name.
    let s = delete(
        &f.app,
        &format!("/api/v1/sites/{}/agents/{}", f.site.id, f.bob_id),
        OPERATOR,
    )
    .await;
    assert_eq!(s, 204);
    let all = f.alice.conversations("").await;
    assert_eq!(
        find(&all, &b)["assignee"],
        json!({"agentId": f.bob_id, "name": "bob@acme.test"})
    );
    // … and an admin can hand it on.
    let (s, _, v) = assign(&f.admin, &b, json!({"agentId": f.alice_id})).await;
    assert_eq!(
        (s, v["assignee"]["agentId"].clone()),
        (200, json!(f.alice_id))
    );
}

/// The next `conversation` frame that `matches`, skipping others (e.g. the opening frame of a
/// conversation made just before the socket connected, which may come late).
async fn next_conversation(ws: &mut Socket, matches: impl Fn(&Value) -> bool) -> Value {
    loop {
        let frame = ws.next_of_type("conversation").await;
        if matches(&frame["conversation"]) {
            return frame;
        }
    }
}

#[tokio::test]
async fn conversation_frames_reach_every_agent_of_the_site_and_no_other() {
    let f = Floor::open().await;
    let (mark, conv) = f.conversation("mark@example.test", 1).await;
    let (mut alice_ws, _) = f.alice.socket().await;
    let (mut stranger_ws, _) = f.other_admin.socket().await;
    let (mut mark_ws, _) = mark.socket().await;
    // The stranger's socket is quiet before anything happens on the floor.
    stranger_ws
        .assert_nothing_pending("another site's admin")
        .await;

    // An admin assigns: alice's socket hears it, with the assignee.
    let (s, _, _) = assign(&f.admin, &conv, json!({"agentId": f.alice_id})).await;
    assert_eq!(s, 200);
    let frame = next_conversation(&mut alice_ws, |c| !c["assignee"].is_null()).await;
    assert_eq!(frame["conversation"]["conversationId"], conv.as_str());
    assert_eq!(
        frame["conversation"]["assignee"]["agentId"],
        f.alice_id.as_str()
    );
    assert_eq!(frame["conversation"]["unreadCount"], 1);
    assert_eq!(frame["conversation"]["status"], "open");

    // Unassigning is a change too.
    assert_eq!(
        assign(&f.alice, &conv, json!({"agentId": null})).await.0,
        200
    );
    let frame = alice_ws.next_of_type("conversation").await;
    assert_eq!(frame["conversation"]["assignee"], Value::Null);

    // A new conversation: the agents hear of it with its unread count.
    let (_, second) = f.conversation("ada@example.test", 1).await;
    let frame = alice_ws.next_of_type("conversation").await;
    assert_eq!(frame["conversation"]["conversationId"], second.as_str());
    assert_eq!(frame["conversation"]["unreadCount"], 1);
    assert_eq!(frame["conversation"]["assignee"], Value::Null);

    // A close: the answer and the frame both say so, with the assignee.
    assert_eq!(
        assign(&f.bob, &conv, json!({"agentId": f.bob_id})).await.0,
        200
    );
    let frame = alice_ws.next_of_type("conversation").await;
    assert_eq!(
        frame["conversation"]["assignee"]["agentId"],
        f.bob_id.as_str()
    );
    let (s, closed) = f.bob.close(&conv).await;
    assert_eq!(s, 200, "{closed}");
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["assignee"]["agentId"], f.bob_id.as_str());
    assert!(closed["unreadCount"].is_i64(), "{closed}");
    let frame = alice_ws.next_of_type("conversation").await;
    assert_eq!(frame["conversation"]["conversationId"], conv.as_str());
    assert_eq!(frame["conversation"]["status"], "closed");
    assert_eq!(
        frame["conversation"]["assignee"]["agentId"],
        f.bob_id.as_str()
    );

    // The contact hears of its close, but never of assignees.
    let frame = mark_ws.next_of_type("conversation").await;
    assert_eq!(frame["conversation"]["status"], "closed");
    assert!(frame["conversation"].get("assignee").is_none(), "{frame}");
    assert!(
        frame["conversation"].get("unreadCount").is_none(),
        "{frame}"
    );

    // Another site's agents heard nothing of all this.
    stranger_ws
        .assert_nothing_pending("another site's admin")
        .await;
}

#[tokio::test]
async fn an_assignment_on_one_process_reaches_an_agent_on_another() {
    if !process::nats_installed("two processes over NATS") {
        return;
    }
    let nats = Nats::start();
    let (a, b) = TestApp::two_nodes(&nats).await;
    let (site, messenger) = a.site_with_messenger().await;
    let mark = a
        .messenger_of(site, &messenger)
        .contact("mark@example.test")
        .await;
    let conv = mark.send("m-1", "Hello").await["conversationId"]
        .as_str()
        .expect("id")
        .to_owned();
    let admin = a.site_of(site).agent("admin@acme.test", "admin").await;
    let bob_id = id_of(&a.site_of(site).create_agent("bob@acme.test", "agent").await);
    let bob = b.site_of(site).login("bob@acme.test").await;
    let (mut bob_ws, _) = bob.socket().await;

    let (s, _, _) = assign(&admin, &conv, json!({"agentId": bob_id})).await;
    assert_eq!(s, 200);
    let frame = next_conversation(&mut bob_ws, |c| !c["assignee"].is_null()).await;
    assert_eq!(frame["conversation"]["conversationId"], conv.as_str());
    assert_eq!(frame["conversation"]["assignee"]["name"], "bob@acme.test");
    // And what process b answers agrees.
    let mine = bob.conversations("?assignee=me").await;
    assert_eq!(ids(&mine), vec![conv]);
}

#[tokio::test]
async fn unread_counts_follow_the_contacts_sends_and_the_agents_read_marker() {
    let f = Floor::open().await;
    let (mark, conv) = f.conversation("mark@example.test", 3).await;
    let unread = |list: Value| find(&list, &conv)["unreadCount"].as_i64().expect("count");
    assert_eq!(unread(f.alice.conversations("").await), 3);

    // Agents' own messages are not unread.
    f.alice.send(&conv, "r-1", "Looking into it").await;
    assert_eq!(unread(f.alice.conversations("").await), 3);

    // The read marker: up to seq 2 read, the contact's seq 3 still unread.
    let read = |seq: i64| {
        let alice = f.alice.clone();
        let conv = conv.clone();
        async move {
            let r = alice
                .post(&format!("/conversations/{conv}/read"), &json!({"seq": seq}))
                .await;
            assert_eq!(r.status(), 204);
        }
    };
    read(2).await;
    assert_eq!(unread(f.alice.conversations("").await), 1);
    read(4).await;
    assert_eq!(unread(f.alice.conversations("").await), 0);

    mark.send("m-9", "Any news?").await;
    mark.send("m-10", "Hello?").await;
    assert_eq!(unread(f.alice.conversations("").await), 2);
    // The contact's own read marker does not matter.
    let r = mark
        .post(
            &format!("/api/v1/messenger/conversations/{conv}/read"),
            &json!({"seq": 6}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let (s, one) = f.alice.get(&format!("/conversations/{conv}")).await;
    assert_eq!((s, one["unreadCount"].clone()), (200, json!(2)));
    read(6).await;
    let (_, one) = f.alice.get(&format!("/conversations/{conv}")).await;
    assert_eq!(one["unreadCount"], 0);
}

/// Set the `updated_at` of conversations straight in the database (to make ties).
async fn set_updated_at(app: &TestApp, conversations: &[String], at: i64) {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .expect("connect to the test database");
    for id in conversations {
        sqlx::query("UPDATE conversations SET updated_at = $1 WHERE conversation_id = $2")
            .bind(at)
            .bind(id)
            .execute(&mut c)
            .await
            .expect("update");
    }
}

/// Every page of `query` with `limit`, following `next`: the ids in order, and the pages.
async fn walk(agent: &Agent, query: &str, limit: usize) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &after {
            Some(c) => format!("?limit={limit}{query}&after={c}"),
            None => format!("?limit={limit}{query}"),
        };
        let page = agent.conversations(&q).await;
        pages += 1;
        let got = ids(&page);
        assert!(got.len() <= limit, "{page}");
        out.extend(got);
        match page["next"].as_str() {
            Some(c) => after = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 1000, "the cursor does not move");
    }
    (out, pages)
}

#[tokio::test]
async fn paging_collects_every_conversation_exactly_once_even_with_ties() {
    let f = Floor::open().await;
    let mut all = Vec::new();
    for i in 0..120 {
        let (_, id) = f.conversation(&format!("c{i}@example.test"), 1).await;
        all.push(id);
    }
    // Ties: a third share one time, another third another.
    set_updated_at(&f.app, &all[0..40], 1_800_000_000_000).await;
    set_updated_at(&f.app, &all[40..80], 1_700_000_000_000).await;
    for i in (80..120).step_by(3) {
        assert_eq!(
            assign(&f.admin, &all[i], json!({"agentId": f.alice_id}))
                .await
                .0,
            200
        );
    }

    let (got, pages) = walk(&f.alice, "", 7).await;
    assert_eq!(pages, 120usize.div_ceil(7));
    assert_eq!(got.len(), 120);
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 120, "repeats");
    assert_eq!(
        got.iter().cloned().collect::<HashSet<_>>(),
        all.iter().cloned().collect::<HashSet<_>>()
    );
    // Newest first: the ties sit together, in one order.
    let whole = f.alice.conversations("?limit=200").await;
    assert_eq!(ids(&whole), got);
    let times: Vec<time::OffsetDateTime> = whole["conversations"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| {
            let t = c["updatedAt"].as_str().expect("updatedAt");
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .expect("RFC 3339")
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "not newest first: {times:?}"
    );
    assert_eq!(whole["next"], Value::Null);

    // Exactly one page of everything: no `next`.
    let (got, pages) = walk(&f.alice, "", 120).await;
    assert_eq!((got.len(), pages), (120, 1));
    // Filters page too.
    let (mine, _) = walk(&f.alice, "&assignee=me", 4).await;
    assert_eq!(mine.len(), 14);
    assert_eq!(mine.iter().collect::<HashSet<_>>().len(), 14);
    let (unassigned, _) = walk(&f.alice, "&assignee=none", 9).await;
    assert_eq!(unassigned.len(), 106);
}

#[tokio::test]
async fn a_contacts_history_spans_its_closed_conversations() {
    let f = Floor::open().await;
    let (mark, first) = f.conversation("mark@example.test", 1).await;
    assert_eq!(f.alice.close(&first).await.0, 200);
    let second = mark.send("m-2", "Me again").await["conversationId"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_ne!(first, second);
    assert_eq!(f.alice.close(&second).await.0, 200);
    let third = mark.send("m-3", "And again").await["conversationId"]
        .as_str()
        .expect("id")
        .to_owned();
    let (_, _other) = f.conversation("ada@example.test", 1).await;

    let history = f
        .alice
        .conversations(&format!("?contactId={}", mark.id))
        .await;
    assert_eq!(
        ids(&history),
        vec![third.clone(), second.clone(), first.clone()]
    );
    assert_eq!(history["conversations"][0]["status"], "open");
    assert_eq!(history["conversations"][2]["status"], "closed");
    let closed = f
        .alice
        .conversations(&format!("?contactId={}&status=closed", mark.id))
        .await;
    assert_eq!(ids(&closed), vec![second.clone(), first.clone()]);
    let (paged, _) = walk(&f.alice, &format!("&contactId={}", mark.id), 1).await;
    assert_eq!(paged, vec![third, second, first.clone()]);

    // A closed conversation reads as it was (read-only in the console).
    let (s, v) = f.alice.get(&format!("/conversations/{first}")).await;
    assert_eq!((s, v["status"].clone()), (200, json!("closed")));

    // Another site sees no such contact's history, and no such conversation.
    let (s, v) = f
        .other_admin
        .get(&format!("/conversations?contactId={}", mark.id))
        .await;
    assert_eq!((s, ids(&v).len()), (200, 0));
    let (s, code) = error_code(
        f.other_admin
            .fetch(&format!("/conversations/{first}"))
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (404, "not_found"));
}

#[tokio::test]
async fn canned_replies_are_the_admins_to_write_and_every_agents_to_read() {
    let f = Floor::open().await;
    let body = "We are open 9–17, Monday to Friday.";
    let r = f
        .admin
        .post(
            "/canned-replies",
            &json!({"shortcut": "hours", "title": "Opening hours", "body": body}),
        )
        .await;
    let (s, _, created) = answer(r).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["shortcut"], "hours");
    assert_eq!(created["title"], "Opening hours");
    assert_eq!(created["body"], body);
    assert!(
        created["createdAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let id = created["cannedReplyId"].as_str().expect("id").to_owned();
    uuid::Uuid::parse_str(&id).expect("a uuid");

    // Every agent of the site reads them; no other site does.
    let (s, list) = f.alice.get("/canned-replies").await;
    assert_eq!(s, 200);
    assert_eq!(list["cannedReplies"], json!([created]));
    let (s, code) = error_code(
        f.other_admin
            .http
            .get(
                &format!("/api/v1/sites/{}/canned-replies", f.site.id),
                Some(&f.other_admin.token),
            )
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (404, "not_found"));
    let (s, other) = f.other_admin.get("/canned-replies").await;
    assert_eq!((s, other["cannedReplies"].clone()), (200, json!([])));

    // Agents cannot write.
    let (s, code) = error_code(
        f.alice
            .post(
                "/canned-replies",
                &json!({"shortcut": "x", "title": "x", "body": "x"}),
            )
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (403, "forbidden"));
    let s = delete(
        &f.app,
        &format!("/api/v1/sites/{}/canned-replies/{id}", f.site.id),
        &f.alice.token,
    )
    .await;
    assert_eq!(s, 403);

    // A shortcut is the site's once; another site may have its own.
    let (s, code) = error_code(
        f.admin
            .post(
                "/canned-replies",
                &json!({"shortcut": "hours", "title": "Again", "body": "x"}),
            )
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "conflict"));
    let r = f
        .other_admin
        .post(
            "/canned-replies",
            &json!({"shortcut": "hours", "title": "Ours", "body": "x"}),
        )
        .await;
    assert_eq!(r.status(), 201);

    // Validation, every field; the longest allowed values pass.
    let long_title = "t".repeat(201);
    let long_body = "b".repeat(10_001);
    let long_shortcut = "s".repeat(33);
    for bad in [
        json!({"shortcut": "Hours", "title": "t", "body": "b"}),
        json!({"shortcut": "two words", "title": "t", "body": "b"}),
        json!({"shortcut": "", "title": "t", "body": "b"}),
        json!({"shortcut": long_shortcut, "title": "t", "body": "b"}),
        json!({"shortcut": "ok", "title": "", "body": "b"}),
        json!({"shortcut": "ok", "title": long_title, "body": "b"}),
        json!({"shortcut": "ok", "title": "t", "body": ""}),
        json!({"shortcut": "ok", "title": "t", "body": long_body}),
        json!({"shortcut": "ok", "title": "t"}),
        json!({"shortcut": 5, "title": "t", "body": "b"}),
        json!({"shortcut": "ok", "title": ["t"], "body": "b"}),
    ] {
        let (s, code) = error_code(f.admin.post("/canned-replies", &bad).await).await;
        assert_eq!((s, code.as_str()), (400, "invalid_request"), "{bad}");
    }
    let r = f
        .admin
        .post(
            "/canned-replies",
            &json!({"shortcut": format!("{}_-9", "a".repeat(29)), "title": "t".repeat(200), "body": "é".repeat(10_000)}),
        )
        .await;
    assert_eq!(r.status(), 201);

    // Deleting: another site's reply is not found, a bad id is a bad request.
    let mine = format!("/api/v1/sites/{}/canned-replies/{id}", f.site.id);
    let theirs = format!("/api/v1/sites/{}/canned-replies/{id}", f.other.id);
    assert_eq!(delete(&f.app, &theirs, &f.other_admin.token).await, 404);
    assert_eq!(
        delete(
            &f.app,
            &format!("/api/v1/sites/{}/canned-replies/nope", f.site.id),
            &f.admin.token
        )
        .await,
        400
    );
    assert_eq!(delete(&f.app, &mine, &f.admin.token).await, 204);
    assert_eq!(delete(&f.app, &mine, &f.admin.token).await, 404);
    let (_, list) = f.alice.get("/canned-replies").await;
    assert!(
        list["cannedReplies"]
            .as_array()
            .expect("list")
            .iter()
            .all(|c| c["cannedReplyId"] != id.as_str())
    );

    // The audit log names the reply and who acted, nothing of its text.
    let (s, audit) = f.admin.get("/audit?limit=1000").await;
    assert_eq!(s, 200, "{audit}");
    let entries = audit["entries"].as_array().expect("entries");
    let of = |action: &str| {
        entries
            .iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect::<Vec<_>>()
    };
    let created_entries = of("canned_reply.created");
    assert_eq!(created_entries.len(), 2, "{audit}");
    assert_eq!(
        created_entries[0]["target"],
        json!({"cannedReplyId": id, "shortcut": "hours"})
    );
    assert_eq!(created_entries[0]["actor"]["type"], "agent");
    assert_eq!(created_entries[0]["actor"]["email"], "admin@acme.test");
    let deleted = of("canned_reply.deleted");
    assert_eq!(deleted.len(), 1, "{audit}");
    assert_eq!(
        deleted[0]["target"],
        json!({"cannedReplyId": id, "shortcut": "hours"})
    );
    let text = audit.to_string();
    assert!(
        !text.contains("Monday to Friday"),
        "a body in the audit log"
    );
    assert!(!text.contains(PASSWORD), "a password in the audit log");
    let (s, v) = f.admin.get("/audit/verify").await;
    assert_eq!((s, v["ok"].clone()), (200, json!(true)));
    // Another site's log has only its own entry.
    let (_, theirs) = f.other_admin.get("/audit").await;
    assert_eq!(
        theirs["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("canned_reply.")))
            .count(),
        1
    );
}

#[tokio::test]
#[ignore = "a measurement, run by hand"]
async fn measure_the_list_at_200_conversations() {
    let f = Floor::open().await;
    for i in 0..200 {
        f.conversation(&format!("c{i}@example.test"), 5).await;
    }
    let (big_contact, _) = f.conversation("big@example.test", 1).await;
    for i in 0..2000 {
        big_contact.send(&format!("b-{i}"), "more").await;
    }
    let mut times = Vec::new();
    for _ in 0..30 {
        let t = std::time::Instant::now();
        let v = f.alice.conversations("?limit=200").await;
        times.push(t.elapsed());
        assert_eq!(v["conversations"].as_array().expect("list").len(), 200);
    }
    times.sort();
    eprintln!(
        "MEASURE {} list of 200 (1,000 + 2,001 unread): median {:?}, p90 {:?}",
        backend(),
        times[15],
        times[27]
    );
    // The same list with nothing unread: what counting costs.
    let v = f.alice.conversations("?limit=200").await;
    for c in v["conversations"].as_array().expect("list") {
        let id = c["conversationId"].as_str().expect("id");
        let seq = c["lastSeq"].as_i64().expect("seq");
        let r = f
            .alice
            .post(&format!("/conversations/{id}/read"), &json!({"seq": seq}))
            .await;
        assert_eq!(r.status(), 204);
    }
    let mut times = Vec::new();
    for _ in 0..30 {
        let t = std::time::Instant::now();
        f.alice.conversations("?limit=200").await;
        times.push(t.elapsed());
    }
    times.sort();
    eprintln!(
        "MEASURE {} list of 200 (nothing unread): median {:?}, p90 {:?}",
        backend(),
        times[15],
        times[27]
    );
}
