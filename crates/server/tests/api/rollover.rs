//! Validation rollover (CONTRACT §5 "Rollover"): after a change of key with `rolloverSeconds`,
//! pages that still sign with the previous key keep working for that long, and not a second
//! more; reads show the previous method and its end, never its secret.

use std::time::Duration;

use confidant_testkit::jwt::*;
use confidant_testkit::*;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

fn security_path(m: &Messenger) -> String {
    format!("/api/v1/sites/{}/messengers/{}/security", m.site, m.id)
}

/// PUT the messenger's Security as the operator: (status, answer).
async fn put_security(m: &Messenger, body: Value) -> (u16, Value) {
    json_of(m.http.put(&security_path(m), Some(OPERATOR), &body).await).await
}

/// DELETE …/security/previous-validation with `token`: (status, answer).
async fn end_rollover(m: &Messenger, token: &str) -> (u16, Value) {
    let r = m
        .http
        .client
        .delete(
            m.http
                .url(&format!("{}/previous-validation", security_path(m))),
        )
        .bearer_auth(token)
        .send()
        .await
        .expect("DELETE");
    json_of(r).await
}

/// The messenger's Security as GET shows it.
async fn security_of(m: &Messenger) -> Value {
    let (s, v) = json_of(
        m.http
            .get(
                &format!("/api/v1/sites/{}/messengers/{}", m.site, m.id),
                Some(OPERATOR),
            )
            .await,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["security"].clone()
}

/// The authorize answer's status and code ("ok" for 200).
async fn verdict(m: &Messenger, jwt: &str) -> (u16, String) {
    let r = m.authorize(jwt).await;
    if r.status() == 200 {
        return (200, "ok".into());
    }
    error_code(r).await
}

fn old_token(identity: &str) -> String {
    hs256(SECRET, &claims(identity))
}

fn ok() -> (u16, String) {
    (200, "ok".into())
}

fn refused(code: &str) -> (u16, String) {
    (401, code.into())
}

fn public_key(key: &TestKey) -> Value {
    json!({"method": "publicKey", "publicKey": key.pub_pem()})
}

#[tokio::test]
async fn a_shared_token_keeps_working_after_a_switch_to_a_public_key_until_the_period_ends() {
    let app = TestApp::spawn_with(|s| s.rate_limits = false).await;
    let m = app.site("Acme").await.messenger(json!({})).await;
    let key = TestKey::ed25519();
    let (s, answer) = put_security(
        &m,
        json!({"validation": public_key(&key), "allowedUrls": [app.base], "rolloverSeconds": 2}),
    )
    .await;
    assert_eq!(s, 200, "{answer}");
    assert_eq!(answer["previousValidation"]["method"], "sharedToken");
    let until = answer["previousValidation"]["until"]
        .as_str()
        .expect("until")
        .to_owned();
    assert!(until.ends_with('Z'), "{until}");
    // No read shows the previous secret: the answer, GET, the list.
    let list = app
        .get(
            &format!("/api/v1/sites/{}/messengers", m.site),
            Some(OPERATOR),
        )
        .await
        .text()
        .await
        .expect("list");
    for text in [answer.to_string(), security_of(&m).await.to_string(), list] {
        assert!(
            !text.contains(SECRET),
            "a read shows the old secret: {text}"
        );
        assert!(text.contains(&until), "a read misses the rollover: {text}");
    }

    // Both keys work during the period.
    assert_eq!(verdict(&m, &old_token("old@example.test")).await, ok());
    assert_eq!(
        verdict(&m, &key.token(None, &claims("new@example.test"))).await,
        ok()
    );
    // The previous key's tokens get the same claim checks: an expired one is refused.
    let expired = hs256(SECRET, &json!({"sub": "x", "exp": now() - 3600}));
    assert_eq!(verdict(&m, &expired).await, refused("token_expired"));

    // After the end: refused as any token of a wrong key, and reads show null.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(
        verdict(&m, &old_token("old@example.test")).await,
        refused("algorithm_not_allowed")
    );
    assert_eq!(security_of(&m).await["previousValidation"], Value::Null);
    assert_eq!(
        verdict(&m, &key.token(None, &claims("new@example.test"))).await,
        ok()
    );
}

#[tokio::test]
async fn an_hmac_token_keyed_with_the_new_public_keys_pem_is_never_accepted() {
    let app = TestApp::spawn_with(|s| s.rate_limits = false).await;
    let m = app.site("Acme").await.messenger(json!({})).await;
    let pem = fixture("rsa2048.pub.pem");
    let forged = hs(
        Algorithm::HS256,
        pem.as_bytes(),
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims("mallory@example.test"),
    );
    // Before the switch, during the rollover, and after it.
    assert_eq!(verdict(&m, &forged).await, refused("signature_invalid"));
    let (s, _) = put_security(
        &m,
        json!({"validation": {"method": "publicKey", "publicKey": pem}, "rolloverSeconds": 3600}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(verdict(&m, &old_token("mark@example.test")).await, ok());
    assert_eq!(verdict(&m, &forged).await, refused("algorithm_not_allowed"));
    let (s, _) = end_rollover(&m, OPERATOR).await;
    assert_eq!(s, 200);
    assert_eq!(verdict(&m, &forged).await, refused("algorithm_not_allowed"));
    // A token forged with another secret never passes as the previous key's.
    let (s, _) = put_security(
        &m,
        json!({"validation": {"method": "sharedToken", "sharedToken": SECRET}}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = put_security(
        &m,
        json!({"validation": {"method": "publicKey", "publicKey": pem}, "rolloverSeconds": 3600}),
    )
    .await;
    assert_eq!(s, 200);
    let stranger = hs256("a-different-secret-of-32-bytes-or-more!!", &claims("eve"));
    assert_eq!(
        verdict(&m, &stranger).await,
        refused("algorithm_not_allowed")
    );
}

#[tokio::test]
async fn a_public_key_keeps_working_after_a_switch_to_a_jwks_and_rollover_zero_ends_it() {
    let app = TestApp::spawn_with(|s| {
        s.rate_limits = false;
        s.allow_private_urls = true;
    })
    .await;
    let old = TestKey::ed25519();
    let new = TestKey::p256();
    let jwks = JwksServer::start(vec![new.jwk("2026")]).await;
    let m = app
        .site("Acme")
        .await
        .messenger(json!({"validation": public_key(&old)}))
        .await;
    let old_jwt = old.token(None, &claims("mark@example.test"));
    let new_jwt = new.token(Some("2026"), &claims("mark@example.test"));
    assert_eq!(verdict(&m, &old_jwt).await, ok());

    let (s, answer) = put_security(
        &m,
        json!({"validation": {"method": "jwks", "jwksUrl": jwks.url}, "rolloverSeconds": 3600}),
    )
    .await;
    assert_eq!(s, 200, "{answer}");
    assert_eq!(answer["previousValidation"]["method"], "publicKey");
    assert_eq!(verdict(&m, &old_jwt).await, ok());
    // The old key named by a kid the set lacks: still the previous key's token.
    let old_with_kid = old.token(Some("2025"), &claims("mark@example.test"));
    assert_eq!(verdict(&m, &old_with_kid).await, ok());
    assert_eq!(verdict(&m, &new_jwt).await, ok());

    // A change of key with rolloverSeconds 0 (the default) ends the rollover at once.
    let newer = TestKey::p256();
    let jwks2 = JwksServer::start(vec![newer.jwk("2027"), new.jwk("2026")]).await;
    let (s, answer) = put_security(
        &m,
        json!({"validation": {"method": "jwks", "jwksUrl": jwks2.url}}),
    )
    .await;
    assert_eq!(s, 200, "{answer}");
    assert_eq!(answer["previousValidation"], Value::Null);
    assert_eq!(verdict(&m, &old_jwt).await, refused("key_not_found"));
    assert_eq!(verdict(&m, &new_jwt).await, ok());
}

#[tokio::test]
async fn a_put_that_keeps_the_validation_keeps_the_rollover_and_an_admin_can_end_it() {
    let app = TestApp::spawn_with(|s| s.rate_limits = false).await;
    let site = app.site("Acme").await;
    let m = site.messenger(json!({})).await;
    let key = TestKey::ed25519();
    let (_, started) = put_security(
        &m,
        json!({"validation": public_key(&key), "rolloverSeconds": 3600}),
    )
    .await;
    let previous = started["previousValidation"].clone();
    assert_eq!(previous["method"], "sharedToken");

    // Other fields change, the key (with other line ends) does not; rolloverSeconds is then
    // ignored: the running rollover goes on with its end.
    let crlf = key.pub_pem().replace('\n', "\r\n");
    for body in [
        json!({"validation": {"method": "publicKey", "publicKey": crlf}, "allowedUrls": ["https://portal.example.com"]}),
        json!({"validation": public_key(&key), "clockSkewSeconds": 10, "rolloverSeconds": 60}),
        json!({"validation": public_key(&key), "rolloverSeconds": 0}),
    ] {
        let (s, answer) = put_security(&m, body.clone()).await;
        assert_eq!(s, 200, "{answer}");
        assert_eq!(answer["previousValidation"], previous, "{body}");
    }
    assert_eq!(security_of(&m).await["previousValidation"], previous);
    assert_eq!(verdict(&m, &old_token("mark@example.test")).await, ok());

    // An agent may not end it; another site's admin does not see the messenger.
    let agent = site.agent("agent@example.test", "agent").await;
    assert_eq!(end_rollover(&m, &agent.token).await.0, 403);
    let other = app.site("Other").await;
    let outsider = other.agent("admin@other.test", "admin").await;
    assert_eq!(end_rollover(&m, &outsider.token).await.0, 404);
    let admin = site.agent("admin@example.test", "admin").await;
    assert_eq!(verdict(&m, &old_token("mark@example.test")).await, ok());

    let (s, answer) = end_rollover(&m, &admin.token).await;
    assert_eq!(s, 200, "{answer}");
    assert_eq!(answer["previousValidation"], Value::Null);
    assert_eq!(answer["validation"]["method"], "publicKey");
    assert_eq!(
        verdict(&m, &old_token("mark@example.test")).await,
        refused("algorithm_not_allowed")
    );
    // Ending again is harmless.
    assert_eq!(end_rollover(&m, &admin.token).await.0, 200);

    // The audit log names the rollover and its end, never the secret.
    let (s, audit) = admin.get("/audit?limit=1000").await;
    assert_eq!(s, 200);
    let updates: Vec<&Value> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "security.updated")
        .collect();
    assert_eq!(updates.len(), 5, "{audit}");
    assert_eq!(updates[0]["target"]["rolloverSeconds"], 3600);
    assert_eq!(updates[0]["target"]["previousValidation"], previous);
    assert!(updates[1]["target"].get("rolloverSeconds").is_none());
    assert_eq!(updates[4]["target"]["rolloverEnded"], true);
    assert!(!audit.to_string().contains(SECRET));
}

#[tokio::test]
async fn a_new_rollover_replaces_the_running_one() {
    let app = TestApp::spawn_with(|s| s.rate_limits = false).await;
    let m = app.site("Acme").await.messenger(json!({})).await;
    let b = TestKey::ed25519();
    let c = TestKey::ed25519();
    let (s, _) = put_security(
        &m,
        json!({"validation": public_key(&b), "rolloverSeconds": 3600}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, answer) = put_security(
        &m,
        json!({"validation": public_key(&c), "rolloverSeconds": 600}),
    )
    .await;
    assert_eq!(s, 200, "{answer}");
    assert_eq!(answer["previousValidation"]["method"], "publicKey");
    // Only one previous validation: B's. The shared token is gone.
    assert_eq!(
        verdict(&m, &b.token(None, &claims("b@example.test"))).await,
        ok()
    );
    assert_eq!(
        verdict(&m, &c.token(None, &claims("c@example.test"))).await,
        ok()
    );
    assert_eq!(
        verdict(&m, &old_token("a@example.test")).await,
        refused("algorithm_not_allowed")
    );
}

#[tokio::test]
async fn a_bad_rollover_seconds_is_a_plain_400_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let m = app.site("Acme").await.messenger(json!({})).await;
    let key = TestKey::ed25519();
    for bad in [
        json!(-1),
        json!(604_801),
        json!(1.5),
        json!("3600"),
        json!(true),
        json!({}),
    ] {
        let (s, v) = put_security(
            &m,
            json!({"validation": public_key(&key), "rolloverSeconds": bad}),
        )
        .await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "invalid_request");
        let message = v["error"]["message"].as_str().expect("message");
        assert!(
            message.starts_with("rolloverSeconds: ") && message.contains("604800"),
            "{message}"
        );
    }
    let now = security_of(&m).await;
    assert_eq!(now["validation"]["method"], "sharedToken");
    assert_eq!(now["previousValidation"], Value::Null);
    // The largest period is taken.
    let (s, v) = put_security(
        &m,
        json!({"validation": public_key(&key), "rolloverSeconds": 604_800}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["previousValidation"]["method"], "sharedToken");
}

#[tokio::test]
async fn another_messengers_previous_validation_never_applies() {
    let app = TestApp::spawn_with(|s| s.rate_limits = false).await;
    let site = app.site("Acme").await;
    let rolled = site.messenger(json!({})).await;
    let other_secret = "the-other-messengers-secret-0123456789abcdef";
    let other = site
        .messenger(json!({"validation": {"method": "sharedToken", "sharedToken": other_secret}}))
        .await;
    let elsewhere = app.site("Other").await.messenger(json!({})).await;
    let key = TestKey::ed25519();
    let (s, _) = put_security(
        &rolled,
        json!({"validation": public_key(&key), "rolloverSeconds": 3600}),
    )
    .await;
    assert_eq!(s, 200);
    // A token of the rolled messenger's old secret is no key of the site's other messenger,
    // and the rolled messenger accepts no token of the other's secret.
    assert_eq!(
        verdict(&other, &old_token("mark@example.test")).await,
        refused("signature_invalid")
    );
    assert_eq!(
        verdict(&rolled, &hs256(other_secret, &claims("mark@example.test"))).await,
        refused("algorithm_not_allowed")
    );
    // The other site's messenger (made with the same secret) has no rollover of its own: its
    // previous validation does not leak from the rolled one.
    let (s, _) = put_security(
        &elsewhere,
        json!({"validation": public_key(&TestKey::ed25519())}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        verdict(&elsewhere, &old_token("mark@example.test")).await,
        refused("algorithm_not_allowed")
    );
    assert_eq!(
        verdict(&rolled, &old_token("mark@example.test")).await,
        ok()
    );
    // The rolled messenger's id with the other site's id: unknown.
    let crossed = app.messenger_of(elsewhere.site, &rolled.id);
    assert_eq!(
        error_code(crossed.authorize(&old_token("mark@example.test")).await).await,
        (404, "messenger_not_found".to_owned())
    );
}

#[tokio::test]
async fn the_token_check_says_that_the_previous_validation_accepted_it() {
    let app = TestApp::spawn_with(|s| s.rate_limits = false).await;
    let m = app.site("Acme").await.messenger(json!({})).await;
    let key = TestKey::ed25519();
    let (_, answer) = put_security(
        &m,
        json!({"validation": public_key(&key), "rolloverSeconds": 3600}),
    )
    .await;
    let check = |jwt: String| {
        let m = m.clone();
        async move {
            json_of(
                m.http
                    .post(
                        &format!("/api/v1/sites/{}/messengers/{}/check-token", m.site, m.id),
                        Some(OPERATOR),
                        &json!({ "contactJwt": jwt }),
                    )
                    .await,
            )
            .await
        }
    };
    let (s, report) = check(old_token("mark@example.test")).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    let signature = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == "signature")
        .expect("signature row")
        .clone();
    let detail = signature["detail"].as_str().expect("detail");
    assert!(
        detail.contains("previous validation (sharedToken)"),
        "{detail}"
    );
    let hint = report["hint"].as_str().expect("a hint");
    assert!(hint.contains("previous validation"), "{hint}");
    let until = answer["previousValidation"]["until"]
        .as_str()
        .expect("until");
    assert!(hint.contains(&until[..19]), "{hint} names {until}");
    // A token of the new key: ok, and no word of the rollover.
    let (_, report) = check(key.token(None, &claims("mark@example.test"))).await;
    assert_eq!(report["ok"], true);
    assert_eq!(report["hint"], Value::Null, "{report}");
}

#[tokio::test]
async fn the_previous_secret_is_sealed_at_rest() {
    let app = TestApp::spawn().await;
    let m = app.site("Acme").await.messenger(json!({})).await;
    let (s, _) = put_security(
        &m,
        json!({"validation": public_key(&TestKey::ed25519()), "rolloverSeconds": 3600}),
    )
    .await;
    assert_eq!(s, 200);
    let rows = db::every_row(&app.database_url).await;
    let messenger = rows
        .iter()
        .find(|(t, r)| t == "messengers" && r.contains(&m.id))
        .expect("the messenger's row");
    // Two sealed values now: the Security JSON and the previous validation.
    assert_eq!(messenger.1.matches("v1.").count(), 2, "{}", messenger.1);
    assert!(
        !rows.iter().any(|(_, r)| r.contains(SECRET)),
        "the previous shared token is in the database in clear"
    );
}

#[tokio::test]
async fn a_rollover_and_its_end_hold_on_another_process() {
    if backend() != "postgres" {
        eprintln!("a_rollover_and_its_end_hold_on_another_process: runs in the PostgreSQL pass");
        return;
    }
    if !process::nats_installed("a_rollover_and_its_end_hold_on_another_process") {
        return;
    }
    let nats = Nats::start();
    let (a, b) = TestApp::two_nodes(&nats).await;
    let on_a = a.site("Acme").await.messenger(json!({})).await;
    let on_b = b.messenger_of(on_a.site, &on_a.id);
    let key = TestKey::ed25519();
    assert_eq!(verdict(&on_b, &old_token("mark@example.test")).await, ok());
    let (s, _) = put_security(
        &on_a,
        json!({"validation": public_key(&key), "rolloverSeconds": 3600}),
    )
    .await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(verdict(&on_b, &old_token("mark@example.test")).await, ok());
    assert_eq!(
        verdict(&on_b, &key.token(None, &claims("mark@example.test"))).await,
        ok()
    );
    assert_eq!(end_rollover(&on_a, OPERATOR).await.0, 200);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        verdict(&on_b, &old_token("mark@example.test")).await,
        refused("algorithm_not_allowed")
    );
    assert_eq!(security_of(&on_b).await["previousValidation"], Value::Null);
}
