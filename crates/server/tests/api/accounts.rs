//! Agent accounts (CONTRACT §12): the admin's list and changes (disable, role, password,
//! TOTP reset, unlock), TOTP set-up and login with a code, the site's `requireTotp`, an
//! agent's own sessions, the idle timeout, and their audit entries; from the user's and the
//! attacker's side, on both backends.

use std::time::Duration;

use confidant::totp;
use confidant_testkit::*;
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn app() -> TestApp {
    TestApp::spawn_with(|s| s.rate_limits = false).await
}

async fn patch(app: &TestApp, path: &str, token: &str, body: &Value) -> (u16, String, Value) {
    let r = app
        .client
        .patch(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("PATCH");
    answer(r).await
}

async fn delete(app: &TestApp, path: &str, token: &str) -> u16 {
    app.client
        .delete(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("DELETE")
        .status()
        .as_u16()
}

fn agent_path(site: i64, agent: &str) -> String {
    format!("/api/v1/sites/{site}/agents/{agent}")
}

/// The site's agents as `token` sees them: (status, body).
async fn list(app: &TestApp, site: i64, token: &str) -> (u16, Value) {
    json_of(
        app.get(&format!("/api/v1/sites/{site}/agents"), Some(token))
            .await,
    )
    .await
}

/// One agent of the list, by email.
async fn listed(app: &TestApp, site: i64, email: &str) -> Value {
    let (s, v) = list(app, site, OPERATOR).await;
    assert_eq!(s, 200, "{v}");
    v["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["email"] == email)
        .cloned()
        .unwrap_or_else(|| panic!("{email} is not listed: {v}"))
}

async fn login_with(
    app: &TestApp,
    site: i64,
    email: &str,
    password: &str,
    code: Option<&str>,
) -> (u16, String, Value) {
    let mut body = json!({"siteId": site, "email": email, "password": password});
    if let Some(c) = code {
        body["totp"] = json!(c);
    }
    answer(app.post("/api/v1/auth/login", None, &body).await).await
}

/// The `message` of an error answer.
fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The site's audit log, as the operator reads it.
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

fn actions(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Run SQL on the test's database (what an operator with database access could do).
async fn sql(app: &TestApp, statement: &str) {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .expect("connect to the test database");
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut c)
        .await
        .expect("SQL");
    c.close().await.expect("close");
}

/// The first text column of the first row of `statement`.
async fn sql_text(app: &TestApp, statement: &str) -> Option<String> {
    use sqlx::{Connection as _, Row as _};
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .expect("connect to the test database");
    let row = sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .fetch_optional(&mut c)
        .await
        .expect("SQL");
    let v = row.and_then(|r| r.try_get::<Option<String>, _>(0).expect("text"));
    c.close().await.expect("close");
    v
}

/// The TOTP code of `secret` for the step `offset` steps from now, and that step.
fn code(secret: &str, offset: i64) -> (String, i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let step = totp::step_at(i64::try_from(now).expect("now")) + offset;
    let key = totp::base32_decode(secret).expect("base32");
    (
        totp::hotp(&key, u64::try_from(step).expect("step"), 6),
        step,
    )
}

/// Set up and confirm TOTP for `agent`: its secret. The confirming code is of the current
/// step, so a login needs the next step's code (accepted as one step ahead).
async fn enable_totp(agent: &Agent) -> String {
    let (s, setup) = json_of(
        agent
            .http
            .post("/api/v1/auth/totp/setup", Some(&agent.token), &json!({}))
            .await,
    )
    .await;
    assert_eq!(s, 200, "{setup}");
    let secret = setup["secret"].as_str().expect("secret").to_owned();
    let (c, _) = code(&secret, 0);
    let r = agent
        .http
        .post(
            "/api/v1/auth/totp/confirm",
            Some(&agent.token),
            &json!({"code": c}),
        )
        .await;
    assert_eq!(r.status(), 204);
    secret
}

#[tokio::test]
async fn the_agents_list_shows_account_state_to_admins_only() {
    let app = app().await;
    let site = app.site("Acme").await;
    let admin = site.agent("ada@acme.test", "admin").await;
    let agent = site.agent("bo@acme.test", "agent").await;
    site.create_agent("new@acme.test", "agent").await;

    let (s, v) = list(&app, site.id, &admin.token).await;
    assert_eq!(s, 200, "{v}");
    let agents = v["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 3);
    for a in agents {
        for field in ["agentId", "siteId", "email", "name", "role"] {
            assert!(!a[field].is_null(), "{field} missing: {a}");
        }
        assert_eq!(a["totpEnabled"], false, "{a}");
        assert_eq!(a["disabled"], false, "{a}");
        assert_eq!(a["locked"], false, "{a}");
        assert!(a.get("password").is_none() && a.get("passwordHash").is_none());
    }
    let bo = listed(&app, site.id, "bo@acme.test").await;
    assert!(
        bo["lastLoginAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
        "{bo}"
    );
    assert_eq!(
        listed(&app, site.id, "new@acme.test").await["lastLoginAt"],
        Value::Null
    );

    // An agent may not; another site's admin sees no such site.
    assert_eq!(
        error_code(
            app.get(
                &format!("/api/v1/sites/{}/agents", site.id),
                Some(&agent.token)
            )
            .await
        )
        .await,
        (403, "forbidden".to_owned())
    );
    let other = app.site("Other").await;
    let intruder = other.agent("eve@other.test", "admin").await;
    assert_eq!(list(&app, site.id, &intruder.token).await.0, 404);
}

#[tokio::test]
async fn an_admin_renames_and_promotes_and_bad_fields_are_all_named() {
    let app = app().await;
    let site = app.site("Acme").await;
    let admin = site.agent("ada@acme.test", "admin").await;
    let bo = site.create_agent("bo@acme.test", "agent").await;
    let bo_id = bo["agentId"].as_str().expect("id");
    let bo_agent = site.login("bo@acme.test").await;

    let (s, _, v) = patch(
        &app,
        &agent_path(site.id, bo_id),
        &admin.token,
        &json!({"name": "Bo Builder", "role": "admin"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["role"].as_str()),
        (Some("Bo Builder"), Some("admin"))
    );
    assert_eq!(v["agentId"], bo_id);
    for field in [
        "totpEnabled",
        "disabled",
        "locked",
        "lastLoginAt",
        "email",
        "siteId",
    ] {
        assert!(v.get(field).is_some(), "{field} missing: {v}");
    }
    // Renaming ends no session.
    assert_eq!(bo_agent.get("").await.0, 200);
    // Asking for what is already so changes nothing and records nothing.
    let (s, _, v) = patch(
        &app,
        &agent_path(site.id, bo_id),
        &admin.token,
        &json!({"name": "Bo Builder", "unlock": false}),
    )
    .await;
    assert_eq!((s, v["name"].as_str()), (200, Some("Bo Builder")));
    let updated = audit(&app, site.id)
        .await
        .into_iter()
        .filter(|e| e["action"] == "agent.updated")
        .collect::<Vec<_>>();
    assert_eq!(updated.len(), 1, "{updated:?}");
    assert_eq!(updated[0]["target"]["fields"], json!(["name", "role"]));

    // Every bad field at once, none of them applied.
    let (s, code, v) = patch(
        &app,
        &agent_path(site.id, bo_id),
        &admin.token,
        &json!({"name": 5, "role": "owner", "disabled": "yes", "password": "short",
                "resetTotp": 1, "unlock": "please"}),
    )
    .await;
    assert_eq!((s, code.as_str()), (400, "invalid_request"), "{v}");
    let m = message(&v);
    for field in [
        "name",
        "role",
        "disabled",
        "password",
        "resetTotp",
        "unlock",
    ] {
        assert!(m.contains(field), "{field} not named in: {m}");
    }
    assert!(!m.contains("short"), "the message echoes a value: {m}");
    assert_eq!(
        listed(&app, site.id, "bo@acme.test").await["name"],
        "Bo Builder"
    );
    for body in [
        json!([1]),
        json!("x"),
        json!({"name": ""}),
        json!({"name": "x".repeat(201)}),
    ] {
        let (s, code, _) = patch(&app, &agent_path(site.id, bo_id), &admin.token, &body).await;
        assert_eq!((s, code.as_str()), (400, "invalid_request"), "{body}");
    }

    // An agent may not; a foreign or unknown agent is not found; a bad id is a 400.
    let carl = site.agent("carl@acme.test", "agent").await;
    let (s, code, _) = patch(
        &app,
        &agent_path(site.id, bo_id),
        &carl.token,
        &json!({"name": "x"}),
    )
    .await;
    assert_eq!((s, code.as_str()), (403, "forbidden"));
    let other = app.site("Other").await;
    let eve = other.agent("eve@other.test", "admin").await;
    let (s, _, _) = patch(
        &app,
        &agent_path(site.id, bo_id),
        &eve.token,
        &json!({"name": "x"}),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _, _) = patch(
        &app,
        &agent_path(other.id, bo_id),
        &eve.token,
        &json!({"disabled": true}),
    )
    .await;
    assert_eq!(s, 404, "another site's agent through one's own site");
    let (s, _, _) = patch(
        &app,
        &agent_path(site.id, "0190a5d6-0000-7000-8000-000000000000"),
        &admin.token,
        &json!({"name": "x"}),
    )
    .await;
    assert_eq!(s, 404);
    let (s, code, _) = patch(
        &app,
        &agent_path(site.id, "not-a-uuid"),
        &admin.token,
        &json!({}),
    )
    .await;
    assert_eq!((s, code.as_str()), (400, "invalid_request"));
    assert_eq!(
        listed(&app, site.id, "bo@acme.test").await["disabled"],
        false
    );
}

#[tokio::test]
async fn disabling_ends_the_sessions_and_sockets_at_once_and_refuses_logins() {
    let app = app().await;
    let site = app.site("Acme").await;
    let admin = site.agent("ada@acme.test", "admin").await;
    let bo = site.agent("bo@acme.test", "agent").await;
    let bo_id = listed(&app, site.id, "bo@acme.test").await["agentId"]
        .as_str()
        .expect("id")
        .to_owned();
    let (mut socket, _) = bo.socket().await;

    let (s, _, v) = patch(
        &app,
        &agent_path(site.id, &bo_id),
        &admin.token,
        &json!({"disabled": true}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["disabled"], true);
    assert_eq!(
        error_code(app.get("/api/v1/auth/me", Some(&bo.token)).await).await,
        (401, "unauthorized".to_owned())
    );
    assert_eq!(
        socket.expect_close(Duration::from_secs(2)).await,
        Some(4401)
    );

    // The right password: told the account is disabled; a wrong one: told nothing more.
    let (s, code, v) = login_with(&app, site.id, "bo@acme.test", PASSWORD, None).await;
    assert_eq!((s, code.as_str()), (401, "unauthorized"));
    assert!(message(&v).contains("disabled"), "{v}");
    let (s, code, v) = login_with(&app, site.id, "bo@acme.test", "not the password", None).await;
    assert_eq!((s, code.as_str()), (401, "unauthorized"));
    assert!(!message(&v).contains("disabled"), "{v}");

    let (s, _, _) = patch(
        &app,
        &agent_path(site.id, &bo_id),
        &admin.token,
        &json!({"disabled": false}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        login_with(&app, site.id, "bo@acme.test", PASSWORD, None)
            .await
            .0,
        200
    );

    let entries = audit(&app, site.id).await;
    let ended: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "session.ended")
        .collect();
    assert_eq!(ended.len(), 1, "{entries:?}");
    assert_eq!(ended[0]["target"]["reason"], "disabled");
    assert_eq!(ended[0]["target"]["agentId"], bo_id.as_str());
    assert!(ended[0]["target"]["sessionId"].is_string());
    let updated = entries
        .iter()
        .find(|e| e["action"] == "agent.updated")
        .expect("agent.updated");
    assert_eq!(updated["target"]["fields"], json!(["disabled"]));
    assert_eq!(updated["target"]["email"], "bo@acme.test");
    assert_eq!(updated["actor"]["type"], "agent");
}

#[tokio::test]
async fn the_last_enabled_admin_cannot_be_disabled_or_demoted() {
    let app = app().await;
    let site = app.site("Acme").await;
    let ada = site.create_agent("ada@acme.test", "admin").await;
    let ada_id = ada["agentId"].as_str().expect("id");
    for body in [json!({"disabled": true}), json!({"role": "agent"})] {
        let (s, code, v) = patch(&app, &agent_path(site.id, ada_id), OPERATOR, &body).await;
        assert_eq!((s, code.as_str()), (409, "conflict"), "{body}");
        assert!(message(&v).contains("last"), "{v}");
    }
    // A second admin, then the first may go; the second is now the last.
    let bo = site.create_agent("bo@acme.test", "admin").await;
    let bo_id = bo["agentId"].as_str().expect("id");
    let (s, _, _) = patch(
        &app,
        &agent_path(site.id, ada_id),
        OPERATOR,
        &json!({"role": "agent"}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, code, _) = patch(
        &app,
        &agent_path(site.id, bo_id),
        OPERATOR,
        &json!({"disabled": true}),
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "conflict"));
    // A disabled admin does not count as the site's admin.
    let (s, _, _) = patch(
        &app,
        &agent_path(site.id, ada_id),
        OPERATOR,
        &json!({"role": "admin", "disabled": true}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, code, _) = patch(
        &app,
        &agent_path(site.id, bo_id),
        OPERATOR,
        &json!({"role": "agent"}),
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "conflict"));
    // Refused changes left nothing behind (not even their audit entry).
    let entries = audit(&app, site.id).await;
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["action"] == "agent.updated")
            .count(),
        2,
        "{entries:?}"
    );
}

#[tokio::test]
async fn a_password_reset_ends_the_sessions_and_passwords_are_12_to_1024_characters() {
    let app = app().await;
    let site = app.site("Acme").await;
    let bo = site.agent("bo@acme.test", "agent").await;
    let bo_id = listed(&app, site.id, "bo@acme.test").await["agentId"]
        .as_str()
        .expect("id")
        .to_owned();
    let (mut socket, _) = bo.socket().await;
    let (s, _, v) = patch(
        &app,
        &agent_path(site.id, &bo_id),
        OPERATOR,
        &json!({"password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&bo.token)).await.status(),
        401
    );
    assert_eq!(
        socket.expect_close(Duration::from_secs(2)).await,
        Some(4401)
    );
    assert_eq!(
        login_with(&app, site.id, "bo@acme.test", PASSWORD, None)
            .await
            .0,
        401
    );
    assert_eq!(
        login_with(&app, site.id, "bo@acme.test", NEW_PASSWORD, None)
            .await
            .0,
        200
    );

    for bad in ["eleven char", &"x".repeat(1025)] {
        let (s, code, v) = patch(
            &app,
            &agent_path(site.id, &bo_id),
            OPERATOR,
            &json!({"password": bad}),
        )
        .await;
        assert_eq!((s, code.as_str()), (400, "invalid_request"));
        assert!(message(&v).contains("12"), "{v}");
        let r = app
            .post(
                &format!("/api/v1/sites/{}/agents", site.id),
                Some(OPERATOR),
                &json!({"email": "x@acme.test", "password": bad, "name": "X", "role": "agent"}),
            )
            .await;
        assert_eq!(error_code(r).await, (400, "invalid_request".to_owned()));
    }
    // Twelve characters (not bytes) is enough.
    let r = app
        .post(
            &format!("/api/v1/sites/{}/agents", site.id),
            Some(OPERATOR),
            &json!({"email": "x@acme.test", "password": "twelve chars", "name": "X", "role": "agent"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let (s, _, _) = patch(
        &app,
        &agent_path(site.id, &bo_id),
        OPERATOR,
        &json!({"password": "ñ".repeat(12)}),
    )
    .await;
    assert_eq!(s, 200);

    let entries = audit(&app, site.id).await;
    let text = serde_json::to_string(&entries).expect("json");
    for secret in [PASSWORD, NEW_PASSWORD, "twelve chars", "argon2"] {
        assert!(!text.contains(secret), "the audit log holds {secret:?}");
    }
    let updated = entries
        .iter()
        .find(|e| e["action"] == "agent.updated")
        .expect("agent.updated");
    assert_eq!(updated["target"]["fields"], json!(["password"]));
    assert_eq!(updated["actor"]["type"], "operator");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "session.ended" && e["target"]["reason"] == "revoked")
    );
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "agent.created" && e["target"]["email"] == "x@acme.test")
    );
}

#[tokio::test]
async fn wrong_passwords_lock_the_account_and_an_admin_unlocks_it() {
    let app = app().await;
    let site = app.site("Acme").await;
    let bo = site.create_agent("bo@acme.test", "agent").await;
    let bo_id = bo["agentId"].as_str().expect("id");
    for _ in 0..6 {
        assert_eq!(
            login_with(&app, site.id, "bo@acme.test", "wrong password!", None)
                .await
                .0,
            401
        );
    }
    assert_eq!(
        login_with(&app, site.id, "bo@acme.test", PASSWORD, None)
            .await
            .0,
        429
    );
    assert_eq!(listed(&app, site.id, "bo@acme.test").await["locked"], true);

    let (s, _, v) = patch(
        &app,
        &agent_path(site.id, bo_id),
        OPERATOR,
        &json!({"unlock": true}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["locked"], false);
    assert_eq!(
        login_with(&app, site.id, "bo@acme.test", PASSWORD, None)
            .await
            .0,
        200
    );

    let entries = audit(&app, site.id).await;
    let acts = actions(&entries);
    assert_eq!(
        acts.iter().filter(|a| *a == "login.failed").count(),
        6,
        "{acts:?}"
    );
    assert_eq!(
        acts.iter().filter(|a| *a == "login.locked").count(),
        1,
        "{acts:?}"
    );
    let failed = entries
        .iter()
        .find(|e| e["action"] == "login.failed")
        .expect("login.failed");
    assert_eq!(failed["target"]["email"], "bo@acme.test");
    assert!(failed["ip"].is_string(), "{failed}");
    let ok = entries
        .iter()
        .find(|e| e["action"] == "login.succeeded")
        .expect("login.succeeded");
    assert_eq!(ok["actor"]["email"], "bo@acme.test");
    let text = serde_json::to_string(&entries).expect("json");
    assert!(!text.contains("wrong password!") && !text.contains(PASSWORD));
    // A login on a site that does not exist leaves no entry anywhere (there is no log).
    assert_eq!(
        login_with(&app, 99_999, "bo@acme.test", "x", None).await.0,
        401
    );
}

#[tokio::test]
async fn totp_set_up_confirmed_then_every_login_needs_a_fresh_code() {
    let app = app().await;
    let site = app.site("Acme").await;
    let bo = site.agent("bo@acme.test", "agent").await;

    // The operator has no account to protect.
    let r = app
        .post("/api/v1/auth/totp/setup", Some(OPERATOR), &json!({}))
        .await;
    assert_eq!(error_code(r).await, (403, "forbidden".to_owned()));

    let (s, setup) = json_of(
        app.post("/api/v1/auth/totp/setup", Some(&bo.token), &json!({}))
            .await,
    )
    .await;
    assert_eq!(s, 200, "{setup}");
    let secret = setup["secret"].as_str().expect("secret").to_owned();
    assert!(
        secret.len() >= 26 && totp::base32_decode(&secret).is_some(),
        "{secret}"
    );
    let url = setup["otpauthUrl"].as_str().expect("url");
    assert!(
        url.starts_with("otpauth://totp/Confidant:bo%40acme.test?secret="),
        "{url}"
    );
    assert!(
        url.contains(&format!("secret={secret}")) && url.contains("issuer=Confidant"),
        "{url}"
    );
    // Sealed at rest: the database holds no clear secret.
    let stored = sql_text(
        &app,
        "SELECT totp_pending FROM agents WHERE email = 'bo@acme.test'",
    )
    .await
    .expect("pending secret stored");
    assert!(
        !stored.contains(&secret) && stored.starts_with("v1."),
        "{stored}"
    );

    // A wrong code, a malformed one and a missing one are refused; TOTP stays off.
    for body in [
        json!({"code": code(&secret, 20).0}),
        json!({"code": "12a456"}),
        json!({}),
        json!({"code": 123456}),
    ] {
        let r = app
            .post("/api/v1/auth/totp/confirm", Some(&bo.token), &body)
            .await;
        assert_eq!(
            error_code(r).await,
            (400, "invalid_request".to_owned()),
            "{body}"
        );
    }
    assert_eq!(
        listed(&app, site.id, "bo@acme.test").await["totpEnabled"],
        false
    );
    assert_eq!(
        login_with(&app, site.id, "bo@acme.test", PASSWORD, None)
            .await
            .0,
        200
    );

    let (c, _) = code(&secret, 0);
    let r = app
        .post(
            "/api/v1/auth/totp/confirm",
            Some(&bo.token),
            &json!({"code": c}),
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        listed(&app, site.id, "bo@acme.test").await["totpEnabled"],
        true
    );
    let stored = sql_text(
        &app,
        "SELECT totp_secret FROM agents WHERE email = 'bo@acme.test'",
    )
    .await
    .expect("secret stored");
    assert!(!stored.contains(&secret), "the TOTP secret is in clear");
    // Set-up again is refused while it is on (a stolen session cannot rebind it).
    let r = app
        .post("/api/v1/auth/totp/setup", Some(&bo.token), &json!({}))
        .await;
    assert_eq!(error_code(r).await, (409, "conflict".to_owned()));

    // No code: totp_required; the confirming code again: refused; a wrong code: refused.
    let (s, code_word, _) = login_with(&app, site.id, "bo@acme.test", PASSWORD, None).await;
    assert_eq!((s, code_word.as_str()), (401, "totp_required"));
    let (s, code_word, _) = login_with(&app, site.id, "bo@acme.test", PASSWORD, Some(&c)).await;
    assert_eq!(
        (s, code_word.as_str()),
        (401, "unauthorized"),
        "the confirming code was replayed"
    );
    let (s, code_word, _) = login_with(
        &app,
        site.id,
        "bo@acme.test",
        PASSWORD,
        Some(&code(&secret, 20).0),
    )
    .await;
    assert_eq!((s, code_word.as_str()), (401, "unauthorized"));
    // The wrong password with a good code is just wrong.
    let (next, _) = code(&secret, 1);
    let (s, code_word, _) = login_with(
        &app,
        site.id,
        "bo@acme.test",
        "not the password",
        Some(&next),
    )
    .await;
    assert_eq!((s, code_word.as_str()), (401, "unauthorized"));

    // The next step's code works once.
    let (s, _, v) = login_with(&app, site.id, "bo@acme.test", PASSWORD, Some(&next)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["totpSetupRequired"], false);
    let (s, code_word, _) = login_with(&app, site.id, "bo@acme.test", PASSWORD, Some(&next)).await;
    assert_eq!(
        (s, code_word.as_str()),
        (401, "unauthorized"),
        "a replayed code"
    );

    let entries = audit(&app, site.id).await;
    let enabled = entries
        .iter()
        .find(|e| e["action"] == "totp.enabled")
        .expect("totp.enabled");
    assert_eq!(enabled["actor"]["email"], "bo@acme.test");
    let text = serde_json::to_string(&entries).expect("json");
    assert!(
        !text.contains(&secret),
        "the audit log holds the TOTP secret"
    );
    assert!(!text.contains(PASSWORD));
    // Wrong and replayed codes are failed logins.
    assert!(
        entries
            .iter()
            .filter(|e| e["action"] == "login.failed")
            .count()
            >= 3
    );

    // An admin's reset turns it off: the password alone works again.
    let bo_id = listed(&app, site.id, "bo@acme.test").await["agentId"]
        .as_str()
        .expect("id")
        .to_owned();
    let (s, _, v) = patch(
        &app,
        &agent_path(site.id, &bo_id),
        OPERATOR,
        &json!({"resetTotp": true}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["totpEnabled"], false);
    assert_eq!(
        login_with(&app, site.id, "bo@acme.test", PASSWORD, None)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn wrong_totp_codes_count_toward_the_lockout() {
    let app = app().await;
    let site = app.site("Acme").await;
    let bo = site.agent("bo@acme.test", "agent").await;
    let secret = enable_totp(&bo).await;
    let wrong = code(&secret, 40).0;
    for _ in 0..6 {
        let (s, c, _) = login_with(&app, site.id, "bo@acme.test", PASSWORD, Some(&wrong)).await;
        assert_eq!((s, c.as_str()), (401, "unauthorized"));
    }
    let (s, c, _) = login_with(
        &app,
        site.id,
        "bo@acme.test",
        PASSWORD,
        Some(&code(&secret, 1).0),
    )
    .await;
    assert_eq!(
        (s, c.as_str()),
        (429, "rate_limited"),
        "locked even with the right code"
    );
    assert_eq!(listed(&app, site.id, "bo@acme.test").await["locked"], true);
    // A login without a code is not a guess: it does not count.
    let carl = site.agent("carl@acme.test", "agent").await;
    let carl_secret = enable_totp(&carl).await;
    for _ in 0..8 {
        let (s, c, _) = login_with(&app, site.id, "carl@acme.test", PASSWORD, None).await;
        assert_eq!((s, c.as_str()), (401, "totp_required"));
    }
    let (s, _, _) = login_with(
        &app,
        site.id,
        "carl@acme.test",
        PASSWORD,
        Some(&code(&carl_secret, 1).0),
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn require_totp_lets_an_agent_without_it_only_set_it_up() {
    let app = app().await;
    let site = app.site("Acme").await;
    site.create_agent("bo@acme.test", "agent").await;
    // The admin who turns the requirement on keeps the session it did it with (the rule is
    // about logging in); its next login must set TOTP up.
    let ada = site.agent("ada@acme.test", "admin").await;
    let r = ada.put("/settings", &json!({"requireTotp": true})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(ada.get("/agents").await.0, 200);

    let (s, _, v) = login_with(&app, site.id, "bo@acme.test", PASSWORD, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["totpSetupRequired"], true);
    let token = v["token"].as_str().expect("token").to_owned();
    let bo = Agent {
        http: (*app).clone(),
        site: site.id,
        email: "bo@acme.test".into(),
        token: token.clone(),
    };

    // Allowed: who am I, my sessions, the set-up. Anything else: 403 saying what to do.
    assert_eq!(app.get("/api/v1/auth/me", Some(&token)).await.status(), 200);
    assert_eq!(
        app.get("/api/v1/auth/sessions", Some(&token))
            .await
            .status(),
        200
    );
    let (s, v) = bo.get("/messengers").await;
    assert_eq!(s, 403, "{v}");
    assert!(message(&v).contains("two-factor"), "{v}");
    let r = app
        .post("/api/v1/auth/ws-ticket", Some(&token), &json!({}))
        .await;
    assert_eq!(r.status(), 403);
    let mut socket = Socket::connect(&app.ws_url(AGENT_WS)).await;
    socket.send(json!({"type": "auth", "token": token})).await;
    assert_eq!(
        socket.expect_close(Duration::from_secs(2)).await,
        Some(4403)
    );

    let secret = enable_totp(&bo).await;
    // The same session may now do its work.
    assert_eq!(bo.get("/messengers").await.0, 200);
    let (s, _, v) = login_with(
        &app,
        site.id,
        "bo@acme.test",
        PASSWORD,
        Some(&code(&secret, 1).0),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["totpSetupRequired"], false);
    // The operator is not held by it.
    assert_eq!(
        app.get(
            &format!("/api/v1/sites/{}/messengers", site.id),
            Some(OPERATOR)
        )
        .await
        .status(),
        200
    );
}

#[tokio::test]
async fn an_agent_lists_its_sessions_and_ends_one_on_every_socket() {
    let app = app().await;
    let site = app.site("Acme").await;
    let laptop = site.agent("bo@acme.test", "agent").await;
    let r = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("user-agent", "PhoneBrowser/1.0")
        .json(&json!({"siteId": site.id, "email": "bo@acme.test", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    let phone_token = r.json::<Value>().await.expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let phone = Agent {
        token: phone_token.clone(),
        ..laptop.clone()
    };
    let (mut phone_socket, _) = phone.socket().await;

    let (s, v) = json_of(app.get("/api/v1/auth/sessions", Some(&laptop.token)).await).await;
    assert_eq!(s, 200, "{v}");
    let sessions = v["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2, "{v}");
    // Newest first: the phone's; the laptop's is this request's.
    assert_eq!(sessions[0]["userAgent"], "PhoneBrowser/1.0");
    assert_eq!(
        (
            sessions[0]["current"].as_bool(),
            sessions[1]["current"].as_bool()
        ),
        (Some(false), Some(true))
    );
    for s in sessions {
        for field in ["sessionId", "createdAt", "lastSeenAt", "ip"] {
            assert!(s[field].is_string(), "{field}: {s}");
        }
        assert!(
            s.get("token").is_none() && s.get("tokenHash").is_none(),
            "{s}"
        );
    }
    let phone_id = sessions[0]["sessionId"].as_str().expect("id").to_owned();

    // Another agent cannot end it, nor can the operator; an unknown id is not found.
    let carl = site.agent("carl@acme.test", "agent").await;
    assert_eq!(
        delete(
            &app,
            &format!("/api/v1/auth/sessions/{phone_id}"),
            &carl.token
        )
        .await,
        404
    );
    assert_eq!(
        delete(&app, &format!("/api/v1/auth/sessions/{phone_id}"), OPERATOR).await,
        403
    );
    assert_eq!(
        delete(&app, "/api/v1/auth/sessions/nope", &laptop.token).await,
        404
    );
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&phone_token))
            .await
            .status(),
        200
    );

    assert_eq!(
        delete(
            &app,
            &format!("/api/v1/auth/sessions/{phone_id}"),
            &laptop.token
        )
        .await,
        204
    );
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&phone_token))
            .await
            .status(),
        401
    );
    assert_eq!(
        phone_socket.expect_close(Duration::from_secs(2)).await,
        Some(4401)
    );
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&laptop.token))
            .await
            .status(),
        200
    );
    assert_eq!(
        delete(
            &app,
            &format!("/api/v1/auth/sessions/{phone_id}"),
            &laptop.token
        )
        .await,
        404
    );

    // Logging out is recorded too.
    assert_eq!(laptop.logout().await, 204);
    let entries = audit(&app, site.id).await;
    let reasons: Vec<&str> = entries
        .iter()
        .filter(|e| e["action"] == "session.ended")
        .filter_map(|e| e["target"]["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["revoked", "logout"]);
}

#[tokio::test]
async fn an_idle_session_ends_with_401_and_its_sockets_close() {
    let app = app().await;
    let site = app.site("Acme").await;
    let r = app
        .put(
            &format!("/api/v1/sites/{}/settings", site.id),
            Some(OPERATOR),
            &json!({"idleTimeoutMinutes": 1}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let bo = site.agent("bo@acme.test", "agent").await;
    let (mut socket, _) = bo.socket().await;

    // Used 50 seconds ago: still live, and this request counts as activity.
    sql(
        &app,
        "UPDATE sessions SET last_seen_at = last_seen_at - 50000",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(bo.get("/messengers").await.0, 200);
    // Unused for over a minute (as the store says, whatever process saw it last): ended.
    sql(
        &app,
        "UPDATE sessions SET last_seen_at = last_seen_at - 61000",
    )
    .await;
    let (s, v) = bo.get("/messengers").await;
    assert_eq!(s, 401, "{v}");
    assert!(message(&v).contains("without activity"), "{v}");
    assert_eq!(
        socket.expect_close(Duration::from_secs(2)).await,
        Some(4401)
    );
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&bo.token)).await.status(),
        401
    );

    let entries = audit(&app, site.id).await;
    let ended = entries
        .iter()
        .find(|e| e["action"] == "session.ended")
        .expect("session.ended");
    assert_eq!(ended["target"]["reason"], "idle");
    assert_eq!(ended["actor"]["type"], "system");
}

#[tokio::test]
async fn an_unattended_socket_idles_out_by_itself_but_pings_do_not_keep_it() {
    let app = app().await;
    let site = app.site("Acme").await;
    let r = app
        .put(
            &format!("/api/v1/sites/{}/settings", site.id),
            Some(OPERATOR),
            &json!({"idleTimeoutMinutes": 1}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let bo = site.agent("bo@acme.test", "agent").await;
    let (mut socket, _) = bo.socket().await;
    // The page's own pings (every 20 seconds here) are not activity.
    let started = std::time::Instant::now();
    for _ in 0..3 {
        socket.send(json!({"type": "ping"})).await;
        assert_eq!(socket.next_json().await["type"], "pong");
        if started.elapsed() < Duration::from_secs(40) {
            tokio::time::sleep(Duration::from_secs(20)).await;
        }
    }
    let closed = socket.expect_close(Duration::from_secs(30)).await;
    assert_eq!(closed, Some(4401));
    assert!(
        started.elapsed() >= Duration::from_secs(55),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&bo.token)).await.status(),
        401
    );
}

#[tokio::test]
async fn every_process_judges_disabling_and_idleness_from_the_store() {
    let a = app().await;
    let b = a.spawn_peer(|s| s.rate_limits = false).await;
    let site = a.site("Acme").await;
    let r = a
        .put(
            &format!("/api/v1/sites/{}/settings", site.id),
            Some(OPERATOR),
            &json!({"idleTimeoutMinutes": 1}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let bo = site.agent("bo@acme.test", "agent").await;
    let on_b = |token: &str| {
        let (b, token) = (b.clone(), token.to_owned());
        async move {
            b.get("/api/v1/auth/me", Some(&token))
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(on_b(&bo.token).await, 200);

    // Used on A 50 seconds after its last use: B sees that activity, so the session lives on.
    sql(
        &a,
        "UPDATE sessions SET last_seen_at = last_seen_at - 50000",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        a.get("/api/v1/auth/me", Some(&bo.token)).await.status(),
        200
    );
    sql(
        &a,
        "UPDATE sessions SET last_seen_at = last_seen_at - 30000",
    )
    .await;
    assert_eq!(
        on_b(&bo.token).await,
        200,
        "B ended a session A had seen in use"
    );

    // Disabled on A: refused on B at once.
    let bo_id = listed(&a, site.id, "bo@acme.test").await["agentId"]
        .as_str()
        .expect("id")
        .to_owned();
    let (s, _, _) = patch(
        &a,
        &agent_path(site.id, &bo_id),
        OPERATOR,
        &json!({"disabled": true}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(on_b(&bo.token).await, 401);
}
