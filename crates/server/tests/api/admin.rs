//! Administration (CONTRACT §5): sites, agents, roles, tenant isolation, login, logout and the
//! lockout, the Security tab and the installation code.

use confidant_testkit::jwt::*;
use confidant_testkit::*;
use reqwest::header;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

async fn login(app: &TestApp, site: Value, email: &str, password: &str) -> reqwest::Response {
    app.post(
        "/api/v1/auth/login",
        None,
        &json!({"siteId": site, "email": email, "password": password}),
    )
    .await
}

fn security_path(site: i64, m: &str) -> String {
    format!("/api/v1/sites/{site}/messengers/{m}/security")
}

/// PUT a messenger's Security settings as the operator: (status, error code, body).
async fn put_security(app: &TestApp, site: i64, m: &str, security: &Value) -> (u16, String, Value) {
    answer(
        app.put(&security_path(site, m), Some(OPERATOR), security)
            .await,
    )
    .await
}

/// GET a messenger as the operator: its body.
async fn get_messenger(app: &TestApp, site: i64, m: &str) -> Value {
    answer(
        app.get(
            &format!("/api/v1/sites/{site}/messengers/{m}"),
            Some(OPERATOR),
        )
        .await,
    )
    .await
    .2
}

/// GET a site with `token`: (status, error code).
async fn read_site(app: &TestApp, site: i64, token: &str) -> (u16, String) {
    error_code(app.get(&format!("/api/v1/sites/{site}"), Some(token)).await).await
}

async fn login_status(app: &TestApp, site: i64, email: &str, password: &str) -> u16 {
    login(app, json!(site), email, password)
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn sites_count_from_10000_and_only_the_operator_creates_them() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v1/sites",
            Some(OPERATOR),
            &json!({"name": "Acme Health"}),
        )
        .await;
    let (s, _, site) = answer(r).await;
    assert_eq!(s, 201, "{site}");
    assert_eq!(site["siteId"], 10000);
    assert_eq!(site["name"], "Acme Health");
    assert!(
        time::OffsetDateTime::parse(
            site["createdAt"].as_str().expect("createdAt"),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    assert_eq!(app.create_site("Second").await, 10001);
    let (s, _, got) = answer(app.get("/api/v1/sites/10000", Some(OPERATOR)).await).await;
    assert_eq!(s, 200);
    assert_eq!(got, site);

    let admin = app.agent_token(10000, "admin@acme.test", "admin").await;
    let agent = app.agent_token(10000, "agent@acme.test", "agent").await;
    for t in [&admin, &agent] {
        let (s, c, _) = answer(
            app.post("/api/v1/sites", Some(t), &json!({"name": "Mine"}))
                .await,
        )
        .await;
        assert_eq!((s, c.as_str()), (403, "forbidden"));
    }
    for t in [
        None,
        Some("nope"),
        Some("cfs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        Some(&"x".repeat(5000)[..]),
    ] {
        let (s, c, _) = answer(app.post("/api/v1/sites", t, &json!({"name": "Mine"})).await).await;
        assert_eq!((s, c.as_str()), (401, "unauthorized"), "{t:?}");
    }
    for bad in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": 5}),
    ] {
        let (s, c, _) = answer(app.post("/api/v1/sites", Some(OPERATOR), &bad).await).await;
        assert_eq!((s, c.as_str()), (400, "invalid_request"), "{bad}");
    }
    assert_eq!(
        app.create_site("Third").await,
        10002,
        "refused creations used no id"
    );
    let (s, c, _) = answer(app.get("/api/v1/sites/99999", Some(OPERATOR)).await).await;
    assert_eq!((s, c.as_str()), (404, "not_found"));
}

#[tokio::test]
async fn agents_never_show_their_password() {
    let app = TestApp::spawn().await;
    let site = app.create_site("Acme").await;
    let r = app
        .post(
            &format!("/api/v1/sites/{site}/agents"),
            Some(OPERATOR),
            &json!({"email": "jo@acme.test", "password": PASSWORD, "name": "Jo", "role": "admin"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let text = r.text().await.expect("text");
    let agent: Value = serde_json::from_str(&text).expect("json");
    assert!(uuid::Uuid::parse_str(agent["agentId"].as_str().expect("agentId")).is_ok());
    assert_eq!(agent["siteId"], site);
    assert_eq!(agent["email"], "jo@acme.test");
    assert_eq!(agent["name"], "Jo");
    assert_eq!(agent["role"], "admin");
    let leaks = |t: &str| {
        t.contains(PASSWORD) || t.to_lowercase().contains("argon") || t.contains("password")
    };
    assert!(!leaks(&text), "{text}");

    let list = app
        .get(&format!("/api/v1/sites/{site}/agents"), Some(OPERATOR))
        .await
        .text()
        .await
        .expect("text");
    assert!(!leaks(&list), "{list}");
    let r = login(&app, json!(site), "jo@acme.test", PASSWORD).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    assert!(!leaks(&text), "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["agent"]["agentId"], agent["agentId"]);

    let (s, c, _) = answer(
        app.post(&format!("/api/v1/sites/{site}/agents"), Some(OPERATOR), &json!({"email": "jo@acme.test", "password": "another password", "name": "Jo 2", "role": "agent"})).await,
    )
    .await;
    assert_eq!((s, c.as_str()), (409, "conflict"));
    // The same email on another site is another agent.
    let other = app.create_site("Other").await;
    app.create_agent(other, "jo@acme.test", "agent").await;

    for bad in [
        json!({"email": "not-an-email", "password": PASSWORD, "name": "x", "role": "agent"}),
        json!({"email": "x@acme.test", "password": "short", "name": "x", "role": "agent"}),
        json!({"email": "x@acme.test", "password": PASSWORD, "name": "x", "role": "owner"}),
        json!({"email": "x@acme.test", "password": 12345678, "name": "x", "role": "agent"}),
        json!({"password": PASSWORD, "name": "x"}),
    ] {
        let (s, c, _) = answer(
            app.post(
                &format!("/api/v1/sites/{site}/agents"),
                Some(OPERATOR),
                &bad,
            )
            .await,
        )
        .await;
        assert_eq!((s, c.as_str()), (400, "invalid_request"), "{bad}");
    }
    let (s, c, _) = answer(
        app.post(
            "/api/v1/sites/99999/agents",
            Some(OPERATOR),
            &json!({"email": "a@b.test", "password": PASSWORD, "name": "x", "role": "agent"}),
        )
        .await,
    )
    .await;
    assert_eq!((s, c.as_str()), (404, "not_found"));
}

#[tokio::test]
async fn roles_decide_who_manages_the_site() {
    let app = TestApp::spawn().await;
    let acme = app.site("Acme").await;
    let (site, m) = (acme.id, acme.messenger(json!({})).await.id);
    let admin = acme.agent("admin@acme.test", "admin").await;
    let agent = acme.agent("agent@acme.test", "agent").await;
    let new_messenger = json!({"name": "Sales", "security": {"validation": {"method": "sharedToken", "sharedToken": SECRET}}});
    let new_agent =
        json!({"email": "new@acme.test", "password": PASSWORD, "name": "New", "role": "agent"});
    let sec = json!({"validation": {"method": "sharedToken", "sharedToken": null}});
    let security = format!("/messengers/{m}/security");

    // An agent reads the site's messengers and works conversations, and manages nothing.
    for rest in [
        String::new(),
        "/messengers".to_owned(),
        format!("/messengers/{m}"),
        format!("/messengers/{m}/installation-code"),
        "/conversations".to_owned(),
    ] {
        assert_eq!(agent.fetch(&rest).await.status(), 200, "agent GET {rest}");
    }
    for (what, r) in [
        (
            "POST messengers",
            agent.post("/messengers", &new_messenger).await,
        ),
        ("POST agents", agent.post("/agents", &new_agent).await),
        ("PUT security", agent.put(&security, &sec).await),
        ("GET agents", agent.fetch("/agents").await),
    ] {
        let (s, c, _) = answer(r).await;
        assert_eq!((s, c.as_str()), (403, "forbidden"), "agent {what}");
    }

    // An admin manages its site.
    let (s, _, b) = answer(admin.post("/messengers", &new_messenger).await).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["siteId"], site);
    assert_eq!(b["name"], "Sales");
    assert!(uuid::Uuid::parse_str(b["messengerId"].as_str().expect("id")).is_ok());
    let (s, _, b) = answer(admin.post("/agents", &new_agent).await).await;
    assert_eq!(s, 201, "{b}");
    let (s, _, b) = answer(admin.put(&security, &sec).await).await;
    assert_eq!(s, 200, "{b}");
    let (s, _, b) = answer(admin.fetch("/messengers").await).await;
    assert_eq!(s, 200);
    assert_eq!(b["messengers"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_site_never_sees_another_sites_data() {
    let app = TestApp::spawn().await;
    let (a, m_a) = app.site_with_messenger().await;
    let (b, m_b) = app.site_with_messenger().await;
    let admin_a = app.agent_token(a, "admin@a.test", "admin").await;
    let agent_a = app.agent_token(a, "agent@a.test", "agent").await;
    // Site B has a contact and a conversation.
    let at = app.access_token(b, &m_b, "bob@b.test").await;
    let r = app
        .post(
            "/api/v1/messenger/messages",
            Some(&at),
            &json!({"clientMessageId": "c1", "body": "secret of b"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let msg: Value = r.json().await.expect("msg");
    let conv = msg["conversationId"].as_str().expect("conv").to_owned();
    let contact = {
        let body = app
            .authorize(b, &m_b, &hs256(SECRET, &claims("bob@b.test")))
            .await
            .json::<Value>()
            .await
            .expect("json");
        body["contact"]["contactId"]
            .as_str()
            .expect("id")
            .to_owned()
    };
    let sec = json!({"validation": {"method": "sharedToken", "sharedToken": null}});
    let new_agent =
        json!({"email": "x@b.test", "password": PASSWORD, "name": "x", "role": "admin"});
    let new_messenger = json!({"name": "x", "security": {"validation": {"method": "sharedToken", "sharedToken": SECRET}}});

    for token in [&admin_a, &agent_a] {
        let reads = [
            format!("/api/v1/sites/{b}"),
            format!("/api/v1/sites/{b}/agents"),
            format!("/api/v1/sites/{b}/messengers"),
            format!("/api/v1/sites/{b}/messengers/{m_b}"),
            format!("/api/v1/sites/{b}/messengers/{m_b}/installation-code"),
            format!("/api/v1/sites/{b}/conversations"),
            format!("/api/v1/sites/{b}/conversations?status=open"),
            format!("/api/v1/sites/{b}/conversations/{conv}/messages"),
            format!("/api/v1/sites/{b}/contacts/{contact}"),
        ];
        for path in &reads {
            let (s, c, body) = answer(app.get(path, Some(token)).await).await;
            assert_eq!((s, c.as_str()), (404, "not_found"), "GET {path}: {body}");
            assert!(!body.to_string().contains("secret of b"));
        }
        for (path, body) in [
            (format!("/api/v1/sites/{b}/agents"), &new_agent),
            (format!("/api/v1/sites/{b}/messengers"), &new_messenger),
            (
                format!("/api/v1/sites/{b}/conversations/{conv}/messages"),
                &json!({"clientMessageId": "x", "body": "hi"}),
            ),
            (
                format!("/api/v1/sites/{b}/conversations/{conv}/close"),
                &json!({}),
            ),
        ] {
            let (s, c, resp) = answer(app.post(&path, Some(token), body).await).await;
            assert_eq!((s, c.as_str()), (404, "not_found"), "POST {path}: {resp}");
        }
        let (s, c, resp) = answer(app.put(&security_path(b, &m_b), Some(token), &sec).await).await;
        assert_eq!((s, c.as_str()), (404, "not_found"), "PUT security: {resp}");
        // B's ids under A's own site path are unknown too.
        for path in [
            format!("/api/v1/sites/{a}/messengers/{m_b}"),
            format!("/api/v1/sites/{a}/messengers/{m_b}/installation-code"),
            format!("/api/v1/sites/{a}/conversations/{conv}/messages"),
            format!("/api/v1/sites/{a}/contacts/{contact}"),
        ] {
            let (s, c, body) = answer(app.get(&path, Some(token)).await).await;
            assert!(
                s == 404 && (c == "not_found" || c == "messenger_not_found"),
                "GET {path}: {s} {body}"
            );
        }
        let (s, _, resp) =
            answer(app.put(&security_path(a, &m_b), Some(&admin_a), &sec).await).await;
        assert_eq!(s, 404, "PUT security via own site path: {resp}");
    }
    // A's lists show only A.
    let list: Value = app
        .get(&format!("/api/v1/sites/{a}/messengers"), Some(&agent_a))
        .await
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = list["messengers"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|m| m["messengerId"].as_str())
        .collect();
    assert_eq!(ids, vec![m_a.as_str()]);
    let convs: Value = app
        .get(&format!("/api/v1/sites/{a}/conversations"), Some(&agent_a))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(convs["conversations"].as_array().map(Vec::len), Some(0));
    // B's security was not changed by anything above.
    let still = app
        .authorize(b, &m_b, &hs256(SECRET, &claims("bob@b.test")))
        .await;
    assert_eq!(still.status(), 200);
    // Malformed ids are 400 with the JSON body (CONTRACT §3), before any lookup; never 500,
    // never plain text.
    for path in [
        "/api/v1/sites/abc",
        "/api/v1/sites/-1/messengers",
        "/api/v1/sites/1e5",
        "/api/v1/sites/+10000",
        &format!("/api/v1/sites/{a}/messengers/not-a-uuid"),
        "/api/v1/sites/99999999999999999999999",
        "/api/v1/sites/%ff",
        &format!("/api/v1/sites/{a}/conversations/%ff/messages"),
    ] {
        let (s, c, body) = answer(app.get(path, Some(OPERATOR)).await).await;
        assert_eq!((s, c.as_str()), (400, "invalid_request"), "{path}: {body}");
    }
    // A well-formed id that names nothing is 404.
    let (s, c, _) = answer(
        app.get(
            &format!("/api/v1/sites/{a}/messengers/{}", uuid::Uuid::new_v4()),
            Some(OPERATOR),
        )
        .await,
    )
    .await;
    assert_eq!((s, c.as_str()), (404, "messenger_not_found"));
}

#[tokio::test]
async fn login_logout_and_the_session_cookie() {
    let app = TestApp::spawn().await;
    let site = app.create_site("Acme").await;
    app.create_agent(site, "jo@acme.test", "admin").await;

    let wrong_password =
        answer(login(&app, json!(site), "jo@acme.test", "wrong password!").await).await;
    let unknown_email =
        answer(login(&app, json!(site), "nobody@acme.test", "wrong password!").await).await;
    let unknown_site = answer(login(&app, json!(99_999), "jo@acme.test", PASSWORD).await).await;
    assert_eq!(wrong_password.0, 401);
    assert_eq!(wrong_password.1, "unauthorized");
    assert_eq!(
        wrong_password, unknown_email,
        "the answer tells whether the email exists"
    );
    assert_eq!(wrong_password, unknown_site);
    for bad in [
        json!({}),
        json!({"siteId": site}),
        json!({"siteId": "x", "email": "a@b", "password": "p"}),
        json!({"siteId": site, "email": 5, "password": "p"}),
    ] {
        let (s, c, _) = answer(app.post("/api/v1/auth/login", None, &bad).await).await;
        assert_eq!((s, c.as_str()), (400, "invalid_request"), "{bad}");
    }

    let r = login(&app, json!(site), "jo@acme.test", PASSWORD).await;
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get(header::SET_COOKIE)
        .expect("Set-Cookie")
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: Value = r.json().await.expect("json");
    let token = body["token"].as_str().expect("token").to_owned();
    assert_eq!(body["agent"]["email"], "jo@acme.test");
    let attrs: Vec<String> = cookie
        .split(';')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    assert!(attrs.contains(&"httponly".to_owned()), "{cookie}");
    assert!(attrs.contains(&"samesite=strict".to_owned()), "{cookie}");
    assert!(
        !attrs.contains(&"secure".to_owned()),
        "Secure on an http public URL: {cookie}"
    );
    let pair = cookie.split(';').next().expect("pair").to_owned();

    // The cookie alone authenticates (no bearer).
    let by_cookie = |path: &str| {
        app.client
            .get(app.url(path))
            .header(header::COOKIE, pair.clone())
            .send()
    };
    for path in [
        format!("/api/v1/sites/{site}"),
        format!("/api/v1/sites/{site}/messengers"),
    ] {
        let r = by_cookie(&path).await.expect("send");
        assert_eq!(r.status(), 200, "{path}");
    }
    assert_eq!(
        app.get(&format!("/api/v1/sites/{site}"), Some(&token))
            .await
            .status(),
        200
    );
    // Logged-in agents of another session are unaffected by this logout.
    let r = login(&app, json!(site), "jo@acme.test", PASSWORD).await;
    let second = r.json::<Value>().await.expect("json")["token"]
        .as_str()
        .expect("t")
        .to_owned();

    let r = app
        .post("/api/v1/auth/logout", Some(&token), &json!({}))
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        read_site(&app, site, &token).await,
        (401, "unauthorized".to_owned()),
        "the token works after logout"
    );
    let r = by_cookie(&format!("/api/v1/sites/{site}"))
        .await
        .expect("send");
    assert_eq!(r.status(), 401, "the cookie works after logout");
    assert_eq!(
        app.get(&format!("/api/v1/sites/{site}"), Some(&second))
            .await
            .status(),
        200
    );
    let (s, c, _) = answer(app.post("/api/v1/auth/logout", None, &json!({})).await).await;
    assert_eq!((s, c.as_str()), (401, "unauthorized"));
}

#[tokio::test]
async fn cookies_are_secure_behind_an_https_public_url() {
    let app = TestApp::spawn_with(|s| s.public_url = Some("https://chat.example.com".into())).await;
    assert_eq!(app.server().public_url(), "https://chat.example.com");
    let direct = format!("http://{}", app.addr);
    let r = app
        .client
        .post(format!("{direct}/api/v1/sites"))
        .bearer_auth(OPERATOR)
        .json(&json!({"name": "Acme"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let site = r.json::<Value>().await.expect("json")["siteId"]
        .as_i64()
        .expect("id");
    let r = app
        .client
        .post(format!("{direct}/api/v1/sites/{site}/agents"))
        .bearer_auth(OPERATOR)
        .json(
            &json!({"email": "jo@acme.test", "password": PASSWORD, "name": "Jo", "role": "admin"}),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let r = app
        .client
        .post(format!("{direct}/api/v1/auth/login"))
        .json(&json!({"siteId": site, "email": "jo@acme.test", "password": PASSWORD}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get(header::SET_COOKIE)
        .expect("cookie")
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(cookie.split(';').any(|a| a.trim() == "secure"), "{cookie}");
}

/// Six failures in a row lock `(siteId, email)`: the seventh attempt answers 429 even with the
/// right password, and so does an email that does not exist.
async fn lockout_scenario(app: &TestApp) {
    let site = app.create_site("Acme").await;
    app.create_agent(site, "jo@acme.test", "admin").await;
    app.create_agent(site, "kim@acme.test", "agent").await;
    for i in 0..6 {
        let (s, c, _) =
            answer(login(app, json!(site), "jo@acme.test", "wrong password!").await).await;
        assert_eq!((s, c.as_str()), (401, "unauthorized"), "failure {i}");
    }
    let r = login(app, json!(site), "jo@acme.test", PASSWORD).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r
        .headers()
        .get(header::RETRY_AFTER)
        .expect("Retry-After")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another agent of the site is not locked.
    assert_eq!(
        login_status(app, site, "kim@acme.test", PASSWORD).await,
        200
    );

    for i in 0..6 {
        let (s, _, _) =
            answer(login(app, json!(site), "ghost@acme.test", "whatever it is").await).await;
        assert_eq!(s, 401, "ghost failure {i}");
    }
    let r = login(app, json!(site), "ghost@acme.test", "whatever it is").await;
    assert_eq!(
        r.status(),
        429,
        "a non-existent email is not locked like an existing one"
    );
    assert!(r.headers().get(header::RETRY_AFTER).is_some());

    // A success resets the count: 5 failures, a success, 5 failures is still not locked.
    for round in ["first", "second"] {
        for _ in 0..5 {
            let status = login_status(app, site, "kim@acme.test", "wrong password!").await;
            assert_eq!(status, 401, "{round} failures");
        }
        let status = login_status(app, site, "kim@acme.test", PASSWORD).await;
        assert_eq!(status, 200, "{round} success");
    }
}

#[tokio::test]
async fn login_lockout() {
    let app = TestApp::spawn().await;
    lockout_scenario(&app).await;
}

#[tokio::test]
async fn login_lockout_holds_with_rate_limits_off() {
    let app = TestApp::spawn_with(|s| s.rate_limits = false).await;
    lockout_scenario(&app).await;
}

#[tokio::test]
async fn shared_token_rules() {
    let app = TestApp::spawn().await;
    let site = app.create_site("Acme").await;
    let create = |security: Value| {
        let app = &app;
        async move {
            answer(
                app.post(
                    &format!("/api/v1/sites/{site}/messengers"),
                    Some(OPERATOR),
                    &json!({"name": "S", "security": security}),
                )
                .await,
            )
            .await
        }
    };
    // Too short, and not base64url: refused by field, and the refused secret is never echoed.
    for security in [
        json!({"validation": {"method": "sharedToken", "sharedToken": "x".repeat(31)}}),
        json!({"validation": {"method": "sharedToken", "encoding": "base64url", "sharedToken": "!!not*base64url!!".repeat(4)}}),
    ] {
        let secret = security["validation"]["sharedToken"]
            .as_str()
            .expect("secret")
            .to_owned();
        let (s, c, b) = create(security).await;
        assert_eq!((s, c.as_str()), (400, "invalid_request"));
        assert!(
            b["error"]["message"]
                .as_str()
                .expect("msg")
                .contains("validation.sharedToken"),
            "{b}"
        );
        assert!(
            !b.to_string().contains(&secret),
            "the refused secret is echoed: {b}"
        );
    }
    // 42 base64url characters decode to 31 bytes: too short, though the text is long.
    let (s, _, _) = create(json!({"validation": {"method": "sharedToken", "encoding": "base64url", "sharedToken": "A".repeat(42)}})).await;
    assert_eq!(s, 400);
    let (s, c, _) =
        create(json!({"validation": {"method": "sharedToken", "sharedToken": 12345}})).await;
    assert_eq!((s, c.as_str()), (400, "invalid_request"));

    // A base64url secret: the key is the decoded bytes.
    let raw: Vec<u8> = (0u8..48).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &raw);
    let (s, _, m) = create(json!({"validation": {"method": "sharedToken", "encoding": "base64url", "sharedToken": b64}})).await;
    assert_eq!(s, 201, "{m}");
    assert_eq!(m["security"]["validation"]["sharedToken"], Value::Null);
    assert_eq!(m["security"]["validation"]["sharedTokenSet"], true);
    let id = m["messengerId"].as_str().expect("id");
    let t = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims("a"),
        &jsonwebtoken::EncodingKey::from_secret(&raw),
    )
    .expect("sign");
    assert_eq!(app.authorize(site, id, &t).await.status(), 200);
    let as_text = hs256(&b64, &claims("a"));
    assert_eq!(
        error_code(app.authorize(site, id, &as_text).await).await,
        (401, "signature_invalid".to_owned())
    );

    // Generated: shown once, in the answer that made it.
    let (s, _, m) = create(json!({"validation": {"method": "sharedToken"}})).await;
    assert_eq!(s, 201, "{m}");
    let generated = m["security"]["validation"]["sharedToken"]
        .as_str()
        .expect("the generated secret is shown")
        .to_owned();
    assert!(generated.len() >= 32);
    let id = m["messengerId"].as_str().expect("id").to_owned();
    let put = |security: Value| {
        let (app, id) = (&app, &id);
        async move { put_security(app, site, id, &security).await }
    };
    let got = get_messenger(&app, site, &id).await;
    assert_eq!(got["security"]["validation"]["sharedToken"], Value::Null);
    assert_eq!(got["security"]["validation"]["sharedTokenSet"], true);
    let list = app
        .get(&format!("/api/v1/sites/{site}/messengers"), Some(OPERATOR))
        .await
        .text()
        .await
        .expect("text");
    assert!(!list.contains(&generated), "a list shows the secret");
    assert!(!got.to_string().contains(&generated));
    let old = hs256(&generated, &claims("a"));
    assert_eq!(app.authorize(site, &id, &old).await.status(), 200);
    // A messenger created with no security at all gets a generated secret too.
    let (s, _, m) = answer(
        app.post(
            &format!("/api/v1/sites/{site}/messengers"),
            Some(OPERATOR),
            &json!({"name": "Bare"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201);
    assert!(
        m["security"]["validation"]["sharedToken"]
            .as_str()
            .is_some_and(|s| s.len() >= 32),
        "{m}"
    );

    // "sharedToken": null keeps the secret while other settings change.
    let (s, _, sec) = put(json!({"validation": {"method": "sharedToken", "sharedToken": null}, "clockSkewSeconds": 5})).await;
    assert_eq!(s, 200, "{sec}");
    assert_eq!(sec["clockSkewSeconds"], 5);
    assert_eq!(sec["validation"]["sharedToken"], Value::Null);
    assert_eq!(
        app.authorize(site, &id, &old).await.status(),
        200,
        "the kept secret no longer verifies"
    );
    // The GET shape round-trips through PUT.
    let got = get_messenger(&app, site, &id).await;
    let (s, _, _) = put(got["security"].clone()).await;
    assert_eq!(s, 200);
    assert_eq!(app.authorize(site, &id, &old).await.status(), 200);

    // A new secret governs the very next authorize.
    let fresh = "a-brand-new-secret-that-is-long-enough-0123";
    let (s, _, _) =
        put(json!({"validation": {"method": "sharedToken", "sharedToken": fresh}})).await;
    assert_eq!(s, 200);
    assert_eq!(
        error_code(app.authorize(site, &id, &old).await).await,
        (401, "signature_invalid".to_owned())
    );
    assert_eq!(
        app.authorize(site, &id, &hs256(fresh, &claims("a")))
            .await
            .status(),
        200
    );
    // And a switch to a public key refuses HMAC at once.
    let (s, _, _) =
        put(json!({"validation": {"method": "publicKey", "publicKey": fixture("p256.pub.pem")}}))
            .await;
    assert_eq!(s, 200);
    assert_eq!(
        error_code(app.authorize(site, &id, &hs256(fresh, &claims("a"))).await).await,
        (401, "algorithm_not_allowed".to_owned())
    );
    let es = sign(
        jsonwebtoken::Algorithm::ES256,
        None,
        &private_key("p256"),
        &claims("a"),
    );
    assert_eq!(app.authorize(site, &id, &es).await.status(), 200);
    // Back to a shared token: null has nothing to keep now.
    let (s, c, _) =
        put(json!({"validation": {"method": "sharedToken", "sharedToken": null}})).await;
    assert_eq!((s, c.as_str()), (400, "invalid_request"));
    // A refused PUT changed nothing.
    assert_eq!(app.authorize(site, &id, &es).await.status(), 200);
}

#[tokio::test]
async fn public_keys_are_checked_when_saved() {
    let app = TestApp::spawn().await;
    let (site, m) = app.site_with_messenger().await;
    for (pem, words) in [
        (fixture("rsa1024.pub.pem"), &["2048"][..]),
        (fixture("rsapss.pub.pem"), &["PSS"][..]),
        (
            "-----BEGIN PUBLIC KEY-----\nnot base64 at all!\n-----END PUBLIC KEY-----\n".to_owned(),
            &["parse", "PEM"][..],
        ),
        ("garbage".to_owned(), &["PEM"][..]),
        (fixture("p256.key.pem"), &["private"][..]),
        (fixture("secp256k1.pub.pem"), &["curve"][..]),
        (fixture("ed448.pub.pem"), &["key"][..]),
    ] {
        let sec = json!({"validation": {"method": "publicKey", "publicKey": pem}});
        for r in [
            app.post(
                &format!("/api/v1/sites/{site}/messengers"),
                Some(OPERATOR),
                &json!({"name": "x", "security": sec}),
            )
            .await,
            app.put(&security_path(site, &m), Some(OPERATOR), &sec)
                .await,
        ] {
            let (s, c, b) = answer(r).await;
            assert_eq!((s, c.as_str()), (400, "invalid_request"), "{pem}: {b}");
            let msg = b["error"]["message"].as_str().expect("msg");
            assert!(msg.contains("validation.publicKey"), "{msg}");
            assert!(
                words.iter().any(|w| msg.contains(w)),
                "{msg} should say which ({words:?})"
            );
            if let Some(line) = pem.lines().nth(1) {
                assert!(!msg.contains(line), "the PEM is echoed: {msg}");
            }
        }
    }
    // The messenger still works with its shared token.
    assert_eq!(
        app.authorize(site, &m, &hs256(SECRET, &claims("a")))
            .await
            .status(),
        200
    );
    for ok in [
        "rsa2048.pub.pem",
        "rsa2048.pkcs1.pub.pem",
        "p256.pub.pem",
        "p384.pub.pem",
        "ed25519.pub.pem",
    ] {
        let sec = json!({"validation": {"method": "publicKey", "publicKey": fixture(ok)}});
        let (s, _, b) = put_security(&app, site, &m, &sec).await;
        assert_eq!(s, 200, "{ok}: {b}");
        assert_eq!(b["validation"]["method"], "publicKey");
    }
}

#[tokio::test]
async fn other_security_fields_are_validated() {
    let app = TestApp::spawn().await;
    let (site, m) = app.site_with_messenger().await;
    let base = |extra: Value| {
        let mut s = json!({"validation": {"method": "sharedToken", "sharedToken": null}});
        for (k, v) in extra.as_object().expect("obj") {
            s[k] = v.clone();
        }
        s
    };
    for (extra, field) in [
        (json!({"clockSkewSeconds": 301}), "clockSkewSeconds"),
        (json!({"clockSkewSeconds": -1}), "clockSkewSeconds"),
        (
            json!({"maxTokenLifetimeSeconds": 0}),
            "maxTokenLifetimeSeconds",
        ),
        (json!({"allowedUrls": ["not a url"]}), "allowedUrls"),
        (json!({"allowedUrls": "https://a.example"}), "allowedUrls"),
        (json!({"contactIdentityKey": ""}), "contactIdentityKey"),
        (json!({"issuer": 5}), "issuer"),
        (
            json!({"validation": {"method": "magic"}}),
            "validation.method",
        ),
    ] {
        let (s, c, b) = put_security(&app, site, &m, &base(extra.clone())).await;
        assert_eq!((s, c.as_str()), (400, "invalid_request"), "{extra}");
        assert!(
            b["error"]["message"].as_str().expect("msg").contains(field),
            "{extra}: {b}"
        );
    }
    let (s, _, b) = put_security(&app, site, &m, &base(json!({"allowedUrls": ["https://portal.example.com", "https://*.example.org", "https://www.example.com/secure/"], "clockSkewSeconds": 0, "maxTokenLifetimeSeconds": 600, "issuer": "i", "audience": "a", "contactIdentityKey": "email"}))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["contactIdentityKey"], "email");
    assert_eq!(b["clockSkewSeconds"], 0);
    assert_eq!(b["maxTokenLifetimeSeconds"], 600);
    assert_eq!(b["issuer"], "i");
    assert_eq!(b["audience"], "a");
    assert_eq!(b["allowedUrls"].as_array().map(Vec::len), Some(3));
    let got = get_messenger(&app, site, &m).await;
    assert_eq!(got["security"], b);
    let random = uuid::Uuid::new_v4();
    let (s, c, _) = answer(
        app.put(
            &security_path(site, &random.to_string()),
            Some(OPERATOR),
            &base(json!({})),
        )
        .await,
    )
    .await;
    assert_eq!(s, 404, "{c}");
}

#[tokio::test]
async fn installation_code_names_the_server_site_and_messenger() {
    let app = TestApp::spawn().await;
    let (site, m) = app.site_with_messenger().await;
    let agent = app.agent_token(site, "agent@acme.test", "agent").await;
    let (s, _, b) = answer(
        app.get(
            &format!("/api/v1/sites/{site}/messengers/{m}/installation-code"),
            Some(&agent),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let html = b["html"].as_str().expect("html");
    for needle in [
        format!("{}/messenger/v1/loader.js", app.server().public_url()),
        format!("data-site-id=\"{site}\""),
        format!("data-messenger-id=\"{m}\""),
        "data-contact-jwt=\"\"".to_owned(),
        "data-access-token=\"\"".to_owned(),
        "id=\"confidant-messenger\"".to_owned(),
    ] {
        assert!(html.contains(&needle), "{needle} missing from {html}");
    }
    // The loader it points at is served.
    let loader = app.get("/messenger/v1/loader.js", None).await;
    assert_eq!(loader.status(), 200);
}

#[tokio::test]
async fn concurrent_guesses_cannot_outrun_the_lockout() {
    let app = TestApp::spawn_with(|s| s.rate_limits = false).await;
    let site = app.create_site("Acme").await;
    app.create_agent(site, "jo@acme.test", "admin").await;
    let guesses = (0..24).map(|i| {
        let app = &app;
        async move {
            login(
                app,
                json!(site),
                "jo@acme.test",
                &format!("guess number {i}"),
            )
            .await
            .status()
            .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(wrong + limited, statuses.len(), "{statuses:?}");
    assert!(
        wrong <= 6,
        "{wrong} passwords were tried in parallel before the lockout: {statuses:?}"
    );
    assert_eq!(
        login_status(&app, site, "jo@acme.test", PASSWORD).await,
        429
    );
}

#[tokio::test]
async fn emails_are_one_account_whatever_their_case_and_deleted_agents_lose_their_sessions() {
    let app = TestApp::spawn().await;
    let site = app.create_site("Acme").await;
    let token = app.agent_token(site, "Jo@Acme.test", "agent").await;
    let (s, c, _) = answer(
        app.post(
            &format!("/api/v1/sites/{site}/agents"),
            Some(OPERATOR),
            &json!({"email": "jo@acme.TEST", "password": PASSWORD, "name": "Jo", "role": "agent"}),
        )
        .await,
    )
    .await;
    assert_eq!((s, c.as_str()), (409, "conflict"));
    for email in ["jo@acme.test", " JO@ACME.TEST "] {
        assert_eq!(
            login_status(&app, site, email, PASSWORD).await,
            200,
            "{email}"
        );
    }

    let list: Value = app
        .get(&format!("/api/v1/sites/{site}/agents"), Some(OPERATOR))
        .await
        .json()
        .await
        .expect("json");
    let id = list["agents"][0]["agentId"]
        .as_str()
        .expect("id")
        .to_owned();
    let admin_b = {
        let b = app.create_site("B").await;
        app.agent_token(b, "admin@b.test", "admin").await
    };
    let agent = app.url(&format!("/api/v1/sites/{site}/agents/{id}"));
    let delete = |token: &str| app.client.delete(&agent).bearer_auth(token).send();
    for (by, status, what) in [
        (
            admin_b.as_str(),
            404,
            "another site's admin deleted an agent",
        ),
        (token.as_str(), 403, "an agent deleted an agent"),
        (OPERATOR, 204, "the operator deletes"),
    ] {
        assert_eq!(delete(by).await.expect("send").status(), status, "{what}");
    }
    assert_eq!(
        read_site(&app, site, &token).await,
        (401, "unauthorized".to_owned()),
        "a deleted agent's session still works"
    );
    assert_eq!(
        login_status(&app, site, "jo@acme.test", PASSWORD).await,
        401
    );
    assert_eq!(delete(OPERATOR).await.expect("send").status(), 404);
}
