//! Conversations over REST (CONTRACT §7): round trips, concurrent sends, idempotency, bodies,
//! paging, closing, previews and tenant isolation. Runs on SQLite, or on PostgreSQL with
//! `CONFIDANT_TEST_BACKEND=postgres`.

use std::collections::HashSet;

use confidant_testkit::jwt::*;
use confidant_testkit::*;
use futures_util::future::join_all;
use serde_json::{Value, json};

#[tokio::test]
async fn a_contact_and_an_agent_talk_both_ways() {
    let s = Desk::open().await;
    let (st, m1) = s.mark.try_send("c-1", "Hello, I need help").await;
    assert_eq!(st, 201, "{m1}");
    assert_eq!(m1["seq"], 1);
    assert_eq!(m1["sender"]["type"], "contact");
    assert_eq!(m1["body"], "Hello, I need help");
    assert_eq!(m1["clientMessageId"], "c-1");
    let conv = m1["conversationId"].as_str().unwrap().to_owned();

    // The agent finds it in the queue, with the contact.
    let (st, list) = s.agent.get("/conversations?status=open").await;
    assert_eq!(st, 200);
    let convs = list["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0]["conversationId"], conv.as_str());
    assert_eq!(convs[0]["contact"]["identity"], "mark@example.test");
    assert_eq!(convs[0]["lastMessage"]["body"], "Hello, I need help");

    let (st, m2) = s.agent.try_send(&conv, "a-1", "How can I help?").await;
    assert_eq!(st, 201, "{m2}");
    assert_eq!(m2["seq"], 2);
    assert_eq!(m2["sender"]["type"], "agent");
    assert_eq!(m2["sender"]["name"], "agent@example.test");

    // The contact sees both, in order; the agent reads the same.
    let msgs = s.mark.messages(&conv, "").await;
    assert_eq!(seqs(&msgs), [1, 2]);
    assert_eq!(msgs[1]["body"], "How can I help?");
    let (_, agent_view) = s
        .agent
        .get(&format!("/conversations/{conv}/messages"))
        .await;
    assert_eq!(agent_view["messages"], Value::Array(msgs));

    // A reply goes to the same conversation.
    let (st, m3) = s.mark.try_send("c-2", "Thanks").await;
    assert_eq!(
        (st, m3["seq"].as_i64(), m3["conversationId"].as_str()),
        (201, Some(3), Some(conv.as_str()))
    );
    let (_, mine) = s.mark.get("/api/v1/messenger/conversations").await;
    assert_eq!(mine["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(mine["conversations"][0]["status"], "open");
    assert_eq!(mine["conversations"][0]["lastMessage"]["seq"], 3);
}

#[tokio::test]
async fn forty_concurrent_sends_get_seq_1_to_40_without_gaps_or_repeats() {
    let s = Desk::open().await;
    let (_, first) = s.mark.try_send("first", "one").await;
    let conv = first["conversationId"].as_str().unwrap().to_owned();
    // Several HTTP clients (separate connection pools), contact and agent sends interleaved.
    let clients: Vec<reqwest::Client> = (0..4).map(|_| reqwest::Client::new()).collect();
    let sends = (2..=40).map(|i| {
        let client = clients[i % clients.len()].clone();
        let (url, token, body) = if i % 2 == 0 {
            (
                s.app.url("/api/v1/messenger/messages"),
                s.mark.token.clone(),
                json!({"clientMessageId": format!("c-{i}"), "body": format!("contact {i}")}),
            )
        } else {
            (
                s.app.url(&format!(
                    "/api/v1/sites/{}/conversations/{conv}/messages",
                    s.site.id
                )),
                s.agent.token.clone(),
                json!({"clientMessageId": format!("a-{i}"), "body": format!("agent {i}")}),
            )
        };
        async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.unwrap())
        }
    });
    let answers = join_all(sends).await;
    let mut answered: Vec<i64> = vec![1];
    for (st, m) in &answers {
        assert_eq!(*st, 201, "{m}");
        assert_eq!(m["conversationId"], conv.as_str());
        answered.push(m["seq"].as_i64().unwrap());
    }
    answered.sort_unstable();
    assert_eq!(
        answered,
        (1..=40).collect::<Vec<_>>(),
        "every answer has its own seq"
    );
    let stored = s.mark.messages(&conv, "?limit=200").await;
    assert_eq!(seqs(&stored), (1..=40).collect::<Vec<_>>());
    let ids: HashSet<&str> = stored
        .iter()
        .map(|m| m["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 40);
}

#[tokio::test]
async fn twenty_concurrent_repeats_of_one_send_store_one_message() {
    let s = Desk::open().await;
    // The contact's first send (no conversation yet), repeated 20 times at once.
    let answers = join_all((0..20).map(|_| s.mark.try_send("same-id", "only once"))).await;
    let created = answers.iter().filter(|(st, _)| *st == 201).count();
    let repeats = answers.iter().filter(|(st, _)| *st == 200).count();
    assert_eq!((created, repeats), (1, 19), "{answers:?}");
    let ids: HashSet<&str> = answers
        .iter()
        .map(|(_, m)| m["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "every answer names the same message");
    assert!(answers.iter().all(|(_, m)| m["seq"] == 1));
    let conv = answers[0].1["conversationId"].as_str().unwrap().to_owned();
    assert_eq!(seqs(&s.mark.messages(&conv, "").await), [1]);

    // The same for an agent's send.
    let answers =
        join_all((0..20).map(|_| s.agent.try_send(&conv, "agent-same", "once too"))).await;
    assert_eq!(
        answers.iter().filter(|(st, _)| *st == 201).count(),
        1,
        "{answers:?}"
    );
    assert_eq!(answers.iter().filter(|(st, _)| *st == 200).count(), 19);
    let ids: HashSet<&str> = answers
        .iter()
        .map(|(_, m)| m["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(seqs(&s.mark.messages(&conv, "").await), [1, 2]);

    // A later repeat answers 200 with the first message and stores nothing.
    let (st, again) = s.mark.try_send("same-id", "a different body").await;
    assert_eq!(st, 200);
    assert_eq!(again["body"], "only once");
    assert_eq!(seqs(&s.mark.messages(&conv, "").await), [1, 2]);
}

#[tokio::test]
async fn concurrent_first_sends_open_exactly_one_conversation() {
    let s = Desk::open().await;
    let answers = join_all((0..12).map(|i| {
        let cmid = format!("first-{i}");
        let s = &s;
        async move { s.mark.try_send(&cmid, "hello?").await }
    }))
    .await;
    let convs: HashSet<&str> = answers
        .iter()
        .map(|(st, m)| {
            assert_eq!(*st, 201, "{m}");
            m["conversationId"].as_str().unwrap()
        })
        .collect();
    assert_eq!(convs.len(), 1, "one conversation for all first sends");
    let (_, mine) = s.mark.get("/api/v1/messenger/conversations").await;
    assert_eq!(mine["conversations"].as_array().unwrap().len(), 1);
    let (_, queue) = s.agent.get("/conversations?status=all").await;
    assert_eq!(queue["conversations"].as_array().unwrap().len(), 1);
    let conv = convs.into_iter().next().unwrap();
    assert_eq!(
        seqs(&s.mark.messages(conv, "").await),
        (1..=12).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn bodies_are_1_to_10000_characters_of_text() {
    let s = Desk::open().await;
    let bad_bodies = [
        json!(""),
        json!("x".repeat(10_001)),
        json!(42),
        json!(null),
        json!(["hi"]),
        json!({"text": "hi"}),
    ];
    let no_body = json!({"clientMessageId": "c"});
    let requests = bad_bodies
        .into_iter()
        .map(|body| json!({"clientMessageId": "c", "body": body}))
        .chain([no_body]);
    for request in requests {
        let r = s.mark.post("/api/v1/messenger/messages", &request).await;
        assert_eq!(
            error_code(r).await,
            (400, "invalid_request".to_owned()),
            "{request:.60}"
        );
    }
    // Nothing was stored by the refused sends.
    let (_, mine) = s.mark.get("/api/v1/messenger/conversations").await;
    assert_eq!(mine["conversations"].as_array().unwrap().len(), 0);

    // 10,000 characters is fine, counted as characters, not bytes.
    let (st, m) = s.mark.try_send("max", &"x".repeat(10_000)).await;
    assert_eq!(st, 201);
    let conv = m["conversationId"].as_str().unwrap().to_owned();
    let (st, m) = s.mark.try_send("max-wide", &"ü".repeat(10_000)).await;
    assert_eq!(st, 201, "{m:.200}");
    assert_eq!(m["body"].as_str().unwrap().chars().count(), 10_000);

    // The agent side checks the same.
    for body in [json!(""), json!("y".repeat(10_001)), json!(7)] {
        let r = s
            .agent
            .post(
                &format!("/conversations/{conv}/messages"),
                &json!({"clientMessageId": "a", "body": body}),
            )
            .await;
        assert_eq!(error_code(r).await, (400, "invalid_request".to_owned()));
    }
    let (st, _) = s.agent.try_send(&conv, "a-max", &"y".repeat(10_000)).await;
    assert_eq!(st, 201);
    assert_eq!(seqs(&s.mark.messages(&conv, "").await), [1, 2, 3]);
}

#[tokio::test]
async fn message_lists_page_with_after_and_limit() {
    let s = Desk::open().await;
    let (_, first) = s.mark.try_send("m-1", "1").await;
    let conv = first["conversationId"].as_str().unwrap().to_owned();
    let total = 205;
    let answers = join_all((2..=total).map(|i| {
        let (s, conv, cmid) = (&s, &conv, format!("m-{i}"));
        async move { s.agent.try_send(conv, &cmid, "x").await }
    }))
    .await;
    assert!(answers.iter().all(|(st, _)| *st == 201));

    assert_eq!(
        seqs(&s.mark.messages(&conv, "").await),
        (1..=50).collect::<Vec<_>>(),
        "default limit 50"
    );
    assert_eq!(
        seqs(&s.mark.messages(&conv, "?limit=1000").await),
        (1..=200).collect::<Vec<_>>(),
        "limit counts as 200"
    );
    assert_eq!(
        seqs(&s.mark.messages(&conv, "?after=200&limit=1000").await),
        (201..=205).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&s.mark.messages(&conv, "?after=10&limit=5").await),
        [11, 12, 13, 14, 15]
    );
    assert_eq!(
        seqs(&s.mark.messages(&conv, "?after=205").await),
        Vec::<i64>::new()
    );
    let path = format!(
        "/api/v1/sites/{}/conversations/{conv}/messages?after=150&limit=201",
        s.site.id
    );
    let (_, v) = json_of(s.app.get(&path, Some(&s.agent.token)).await).await;
    assert_eq!(
        seqs(v["messages"].as_array().unwrap()),
        (151..=205).collect::<Vec<_>>()
    );
    for q in ["?limit=0", "?limit=-1", "?after=-1", "?after=x"] {
        let r = s
            .mark
            .fetch(&format!(
                "/api/v1/messenger/conversations/{conv}/messages{q}"
            ))
            .await;
        assert_eq!(
            error_code(r).await,
            (400, "invalid_request".to_owned()),
            "{q}"
        );
    }
}

#[tokio::test]
async fn closing_ends_a_conversation_and_the_next_send_opens_a_new_one() {
    let s = Desk::open().await;
    let (_, m) = s.mark.try_send("c-1", "hi").await;
    let conv = m["conversationId"].as_str().unwrap().to_owned();
    s.agent.try_send(&conv, "a-1", "hello").await;

    let (st, closed) = s.agent.close(&conv).await;
    assert_eq!(st, 200, "{closed}");
    assert_eq!(closed["conversationId"], conv.as_str());
    assert_eq!(closed["status"], "closed");
    let msgs = s.mark.messages(&conv, "").await;
    assert_eq!(seqs(&msgs), [1, 2, 3]);
    assert_eq!(
        msgs[2]["sender"]["type"], "system",
        "closing appends a system message"
    );

    // Closing again changes nothing.
    let (st, again) = s.agent.close(&conv).await;
    assert_eq!((st, again["status"].as_str()), (200, Some("closed")));
    assert_eq!(seqs(&s.mark.messages(&conv, "").await), [1, 2, 3]);

    // The agent cannot write into it any more.
    let r = s
        .agent
        .post(
            &format!("/conversations/{conv}/messages"),
            &json!({"clientMessageId": "a-2", "body": "late"}),
        )
        .await;
    assert_eq!(error_code(r).await, (409, "conflict".to_owned()));

    // The contact's next send opens a new conversation, counting from 1 again.
    let (st, m) = s.mark.try_send("c-2", "one more thing").await;
    assert_eq!(st, 201);
    let conv2 = m["conversationId"].as_str().unwrap().to_owned();
    assert_ne!(conv2, conv);
    assert_eq!(m["seq"], 1);
    // Naming the closed conversation also goes to the open one.
    let r = s
        .mark
        .post(
            "/api/v1/messenger/messages",
            &json!({"clientMessageId": "c-3", "body": "and", "conversationId": conv}),
        )
        .await;
    let (st, m) = json_of(r).await;
    assert_eq!(
        (st, m["conversationId"].as_str(), m["seq"].as_i64()),
        (201, Some(conv2.as_str()), Some(2))
    );

    let (_, open) = s.agent.get("/conversations?status=open").await;
    let open: Vec<&str> = open["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversationId"].as_str().unwrap())
        .collect();
    assert_eq!(open, [conv2.as_str()]);
    let (_, closed) = s.agent.get("/conversations?status=closed").await;
    assert_eq!(closed["conversations"][0]["conversationId"], conv.as_str());
    let (_, mine) = s.mark.get("/api/v1/messenger/conversations").await;
    let mine: Vec<(&str, &str)> = mine["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["conversationId"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        mine,
        [(conv2.as_str(), "open"), (conv.as_str(), "closed")],
        "newest first"
    );
}

#[tokio::test]
async fn preview_conversations_stay_out_of_the_normal_queue() {
    let s = Desk::open().await;
    let preview = s.support.named_contact("mark@example.test", true).await;
    let (st, m) = preview.try_send("p-1", "is this thing on?").await;
    assert_eq!(st, 201);
    let pconv = m["conversationId"].as_str().unwrap().to_owned();
    let (_, mine) = preview.get("/api/v1/messenger/conversations").await;
    assert_eq!(mine["conversations"][0]["preview"], true);

    // The same contact's normal send opens a separate, normal conversation.
    let (_, m) = s.mark.try_send("c-1", "real question").await;
    let conv = m["conversationId"].as_str().unwrap().to_owned();
    assert_ne!(conv, pconv);
    let (_, mine) = s.mark.get("/api/v1/messenger/conversations").await;
    let list = mine["conversations"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0]["conversationId"].as_str(), &list[0]["preview"]),
        (Some(conv.as_str()), &json!(false))
    );
    // Neither token reads the other's conversation.
    let r = s
        .mark
        .fetch(&format!("/api/v1/messenger/conversations/{pconv}/messages"))
        .await;
    assert_eq!(error_code(r).await, (404, "not_found".to_owned()));
    let r = preview
        .fetch(&format!("/api/v1/messenger/conversations/{conv}/messages"))
        .await;
    assert_eq!(error_code(r).await, (404, "not_found".to_owned()));

    let queue = |q: &'static str| {
        let app = &s.app;
        let path = format!("/api/v1/sites/{}/conversations{q}", s.site.id);
        let agent = s.agent.token.clone();
        async move {
            let (_, v) = json_of(app.get(&path, Some(&agent)).await).await;
            v["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["conversationId"].as_str().unwrap().to_owned(),
                        c["preview"].as_bool().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(queue("?status=open").await, [(conv.clone(), false)]);
    assert_eq!(queue("").await, [(conv.clone(), false)]);
    assert_eq!(
        queue("?status=open&preview=true").await,
        [(pconv.clone(), true)]
    );
    let (_, v) = s.agent.get("/conversations?preview=true").await;
    assert_eq!(
        v["conversations"][0]["contact"]["contactId"],
        preview.id.as_str()
    );
}

#[tokio::test]
async fn contacts_and_agents_see_only_their_own() {
    let s = Desk::open().await;
    let (_, m) = s.mark.try_send("c-1", "private").await;
    let conv = m["conversationId"].as_str().unwrap().to_owned();

    // Another contact of the same messenger.
    let other = s.support.named_contact("eve@example.test", false).await;
    let r = other
        .fetch(&format!("/api/v1/messenger/conversations/{conv}/messages"))
        .await;
    assert_eq!(error_code(r).await, (404, "not_found".to_owned()));
    let r = other
        .fetch(&format!(
            "/api/v1/messenger/conversations/{}/messages",
            uuid::Uuid::new_v4()
        ))
        .await;
    assert_eq!(error_code(r).await, (404, "not_found".to_owned()));
    let r = other
        .fetch("/api/v1/messenger/conversations/not-a-uuid/messages")
        .await;
    assert_eq!(error_code(r).await, (400, "invalid_request".to_owned()));
    let r = other
        .post(
            "/api/v1/messenger/messages",
            &json!({"clientMessageId": "e-1", "body": "let me in", "conversationId": conv}),
        )
        .await;
    assert_eq!(error_code(r).await, (404, "not_found".to_owned()));
    let r = other
        .post(
            &format!("/api/v1/messenger/conversations/{conv}/read"),
            &json!({"seq": 1}),
        )
        .await;
    assert_eq!(error_code(r).await, (404, "not_found".to_owned()));
    let (_, theirs) = other.get("/api/v1/messenger/conversations").await;
    assert_eq!(theirs["conversations"], json!([]));

    // An agent of another site.
    let site2 = s.app.site("Other").await;
    let agent2 = site2.agent("agent2@example.test", "admin").await;
    let (site2, agent2) = (site2.id, agent2.token);
    for path in [
        format!("/api/v1/sites/{}/conversations/{conv}/messages", s.site.id),
        format!("/api/v1/sites/{site2}/conversations/{conv}/messages"),
    ] {
        let r = s.app.get(&path, Some(&agent2)).await;
        assert_eq!(error_code(r).await, (404, "not_found".to_owned()), "{path}");
        let r = s
            .app
            .post(
                &path,
                Some(&agent2),
                &json!({"clientMessageId": "x", "body": "hi"}),
            )
            .await;
        assert_eq!(error_code(r).await, (404, "not_found".to_owned()), "{path}");
    }
    let r = s
        .app
        .post(
            &format!("/api/v1/sites/{}/conversations/{conv}/close", s.site.id),
            Some(&agent2),
            &json!({}),
        )
        .await;
    assert_eq!(error_code(r).await, (404, "not_found".to_owned()));
    let r = s
        .app
        .get(
            &format!("/api/v1/sites/{}/conversations", s.site.id),
            Some(&agent2),
        )
        .await;
    assert_eq!(error_code(r).await, (404, "not_found".to_owned()));
    let (_, list) = json_of(
        s.app
            .get(
                &format!("/api/v1/sites/{site2}/conversations?status=all"),
                Some(&agent2),
            )
            .await,
    )
    .await;
    assert_eq!(list["conversations"], json!([]));
    assert_eq!(
        seqs(&s.mark.messages(&conv, "").await),
        [1],
        "nothing was written"
    );
}

#[tokio::test]
async fn bad_access_tokens_are_refused() {
    let s = Desk::open().await;
    let mark = s.support.named_contact("mark@example.test", false).await;
    let token = mark.token.clone();
    let ttl = s.app.server().access_token_ttl();
    // Signed by the server's own key, but expired a second ago.
    let (expired, _) =
        s.app
            .server()
            .sign_access_token(&mark.id, s.site.id, &s.support.id, now() - ttl - 1);
    // A valid token with its signature altered.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    // Claims rewritten to another contact, the original signature kept.
    let parts: Vec<&str> = token.split('.').collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!(uuid::Uuid::new_v4().to_string());
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    // An HS256 token signed with the messenger's shared secret is a Contact JWT, not an access token.
    let contact_jwt = hs256(
        SECRET,
        &json!({"sub": "mark@example.test", "exp": now() + 600}),
    );

    for bad in [
        expired.as_str(),
        forged.as_str(),
        swapped.as_str(),
        contact_jwt.as_str(),
        "",
        "garbage",
    ] {
        let r = s
            .app
            .get("/api/v1/messenger/conversations", Some(bad))
            .await;
        assert_eq!(
            error_code(r).await,
            (401, "unauthorized".to_owned()),
            "token {bad:.30}"
        );
        let r = s
            .app
            .post(
                "/api/v1/messenger/messages",
                Some(bad),
                &json!({"clientMessageId": "c", "body": "hi"}),
            )
            .await;
        assert_eq!(error_code(r).await, (401, "unauthorized".to_owned()));
    }
    let r = s.app.get("/api/v1/messenger/conversations", None).await;
    assert_eq!(error_code(r).await, (401, "unauthorized".to_owned()));

    // A token of this messenger, used on a request that names another messenger.
    let other = s.site.messenger(json!({})).await.id;
    let (client, app) = (&s.app.client, &s.app);
    let naming_other = [
        client
            .get(app.url("/api/v1/messenger/conversations"))
            .header("X-Confidant-Messenger", &other),
        client.get(app.url(&format!(
            "/api/v1/messenger/conversations?messengerId={other}"
        ))),
        client
            .post(app.url(&format!("/api/v1/messenger/messages?messengerId={other}")))
            .json(&json!({"clientMessageId": "c", "body": "hi"})),
    ];
    for request in naming_other {
        let r = request.bearer_auth(&token).send().await.unwrap();
        assert_eq!(error_code(r).await, (401, "unauthorized".to_owned()));
    }
    // Naming its own messenger is fine.
    let r = s
        .app
        .client
        .get(s.app.url(&format!(
            "/api/v1/messenger/conversations?messengerId={}",
            s.support.id
        )))
        .bearer_auth(&token)
        .header("X-Confidant-Messenger", &s.support.id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Nothing was stored by the refused sends.
    let (_, mine) = json_of(
        s.app
            .get("/api/v1/messenger/conversations", Some(&token))
            .await,
    )
    .await;
    assert_eq!(mine["conversations"], json!([]));
}

#[tokio::test]
async fn read_markers_show_in_conversation_lists() {
    let s = Desk::open().await;
    let (_, m) = s.mark.try_send("c-1", "one").await;
    let conv = m["conversationId"].as_str().unwrap().to_owned();
    s.mark.try_send("c-2", "two").await;
    s.agent.try_send(&conv, "a-1", "three").await;
    let r = s
        .agent
        .post(&format!("/conversations/{conv}/read"), &json!({"seq": 2}))
        .await;
    assert_eq!(r.status(), 204);
    let r = s
        .mark
        .post(
            &format!("/api/v1/messenger/conversations/{conv}/read"),
            &json!({"seq": 99}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let (_, q) = s.agent.get("/conversations").await;
    let c = &q["conversations"][0];
    assert_eq!(
        (
            c["agentReadSeq"].as_i64(),
            c["contactReadSeq"].as_i64(),
            c["lastSeq"].as_i64()
        ),
        (Some(2), Some(3), Some(3))
    );
    // Markers never move back.
    let r = s
        .agent
        .post(&format!("/conversations/{conv}/read"), &json!({"seq": 1}))
        .await;
    assert_eq!(r.status(), 204);
    let (_, mine) = s.mark.get("/api/v1/messenger/conversations").await;
    assert_eq!(mine["conversations"][0]["agentReadSeq"], 2);
}

#[tokio::test]
async fn busy_conversations_side_by_side_stay_gapless() {
    // Many contacts' conversations written at once by contacts and agents: writes of one
    // conversation never wait on another writer (no lock waits, no deadlocks, no 500s).
    let s = Desk::open().await;
    let mut convs = Vec::new();
    for i in 0..8 {
        let contact = s
            .support
            .named_contact(&format!("c{i}@example.test"), false)
            .await;
        let (_, m) = contact.try_send("open", "hi").await;
        convs.push((contact, m["conversationId"].as_str().unwrap().to_owned()));
    }
    let sends = convs
        .iter()
        .flat_map(|(contact, conv)| (0..10).map(move |i| (contact, conv, i)));
    let answers = join_all(sends.map(|(contact, conv, i)| {
        let s = &s;
        async move {
            if i % 2 == 0 {
                contact
                    .try_send(&format!("c-{i}"), "from the contact")
                    .await
            } else {
                s.agent
                    .try_send(conv, &format!("a-{i}"), "from the agent")
                    .await
            }
        }
    }))
    .await;
    assert!(answers.iter().all(|(st, _)| *st == 201), "{answers:?}");
    for (contact, conv) in &convs {
        assert_eq!(
            seqs(&contact.messages(conv, "").await),
            (1..=11).collect::<Vec<_>>()
        );
    }
}
