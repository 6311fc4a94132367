//! The audit log (CONTRACT §13), the site settings (§12) and contact search (§14): what an
//! admin sees in the log after each change, who may read it, the chain that verifies after
//! 10,000 entries and names an entry altered or removed behind the server's back, and the
//! tables that refuse such changes in the first place.

use confidant_store::{Actor, AuditEntry};
use confidant_testkit::jwt::{hs256, now};
use confidant_testkit::server::sql;
use confidant_testkit::*;
use serde_json::{Value, json};

async fn entries(app: &TestApp, site: i64, token: &str, query: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/api/v1/sites/{site}/audit{query}"), Some(token))
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("audit");
    v["entries"].as_array().expect("entries").clone()
}

async fn verify(app: &TestApp, site: i64) -> Value {
    let r = app
        .get(
            &format!("/api/v1/sites/{site}/audit/verify"),
            Some(OPERATOR),
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("verify")
}

fn with_action<'a>(all: &'a [Value], action: &str) -> Vec<&'a Value> {
    all.iter().filter(|e| e["action"] == action).collect()
}

#[tokio::test]
async fn every_admin_change_is_logged_with_its_actor_and_address_and_never_a_secret() {
    let app = TestApp::spawn_with(|s| s.allow_private_urls = true).await;
    let site = app.site("Acme").await;
    let admin = site.agent("admin@example.test", "admin").await;

    // The operator creates a messenger with a generated shared token.
    let m = site.messenger(json!({})).await;
    // The admin changes its Security settings with a new shared token.
    let new_secret = "a-brand-new-shared-token-of-enough-length-0123456789";
    let r = admin
        .put(
            &format!("/messengers/{}/security", m.id),
            &json!({"validation": {"method": "sharedToken", "sharedToken": new_secret},
                    "allowedUrls": [app.base], "clockSkewSeconds": 30}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = admin
        .put(
            &format!("/messengers/{}/notifications", m.id),
            &json!({"email": {"enabled": true, "afterSeconds": 60, "linkUrl": "https://portal.example.com/m"}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = admin
        .post(
            "/webhooks",
            &json!({"url": "http://127.0.0.1:9/hook", "events": ["message.created"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let hook: Value = r.json().await.expect("webhook");
    let hook_secret = hook["secret"].as_str().expect("secret").to_owned();
    let hook_id = hook["webhookId"].as_str().expect("id").to_owned();
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/sites/{}/webhooks/{hook_id}", site.id)))
        .bearer_auth(&admin.token)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), 204);
    let r = admin
        .put(
            "/settings",
            &json!({"idleTimeoutMinutes": 30, "retentionDays": 365}),
        )
        .await;
    assert_eq!(r.status(), 200);
    // A key rotation is logged in every site (the keys sign every site's access tokens).
    let other = app.site("Other").await;
    let server = app.server().app().clone();
    confidant::service::keys::rotate_now(&server.store, 3600)
        .await
        .expect("rotate");

    let all = entries(&app, site.id, OPERATOR, "?limit=1000").await;
    let text = Value::Array(all.clone()).to_string();
    for secret in [new_secret, hook_secret.as_str(), SECRET, PASSWORD] {
        assert!(!text.contains(secret), "a secret is in the audit log");
    }
    // seq counts from 1 with no gaps, and every entry has its hash.
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e["seq"], i as i64 + 1, "{e}");
        assert_eq!(e["hash"].as_str().expect("hash").len(), 64);
    }

    let created = with_action(&all, "messenger.created");
    assert_eq!(created.len(), 1, "{text}");
    assert_eq!(created[0]["actor"], json!({"type": "operator"}));
    assert_eq!(created[0]["target"]["messengerId"], m.id.as_str());
    assert_eq!(created[0]["ip"], "127.0.0.1");

    let security = with_action(&all, "security.updated");
    assert_eq!(security.len(), 1, "{text}");
    let actor = &security[0]["actor"];
    assert_eq!(actor["type"], "agent");
    assert_eq!(actor["email"], "admin@example.test");
    assert!(actor["id"].is_string());
    let fields = security[0]["target"]["fields"].to_string();
    assert!(
        fields.contains("validation") && fields.contains("clockSkewSeconds"),
        "{fields}"
    );
    assert!(!fields.contains("allowedUrls"), "unchanged: {fields}");
    assert_eq!(security[0]["target"]["method"], "sharedToken");

    let notices = with_action(&all, "notifications.updated");
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0]["target"]["messengerId"], m.id.as_str());
    let made = with_action(&all, "webhook.created");
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["target"]["webhookId"], hook_id.as_str());
    let gone = with_action(&all, "webhook.deleted");
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0]["target"]["webhookId"], hook_id.as_str());
    let settings = with_action(&all, "settings.updated");
    assert_eq!(settings.len(), 1);
    assert_eq!(
        settings[0]["target"]["fields"],
        json!(["idleTimeoutMinutes", "retentionDays"])
    );
    assert_eq!(with_action(&all, "keys.rotated").len(), 1);
    assert_eq!(
        with_action(&all, "keys.rotated")[0]["actor"]["type"],
        "operator"
    );
    // The other site saw none of this site's changes, only the rotation.
    let theirs = entries(&app, other.id, OPERATOR, "").await;
    assert!(
        theirs
            .iter()
            .all(|e| e["action"] != "security.updated" && e["action"] != "webhook.created"),
        "{theirs:?}"
    );
    assert_eq!(with_action(&theirs, "keys.rotated").len(), 1);

    let v = verify(&app, site.id).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["entries"], all.len() as i64);
    assert_eq!(v["brokenSeq"], Value::Null);
}

#[tokio::test]
async fn the_log_pages_and_only_the_sites_admins_and_the_operator_read_it() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let admin = site.agent("admin@example.test", "admin").await;
    let agent = site.agent("agent@example.test", "agent").await;
    let other = app.site("Other").await;
    let outsider = other.agent("admin@other.test", "admin").await;
    for i in 0..7 {
        let r = admin
            .put("/settings", &json!({"retentionDays": 10 + i}))
            .await;
        assert_eq!(r.status(), 200);
    }
    let all = entries(&app, site.id, &admin.token, "").await;
    let n = all.len() as i64;
    assert!(n >= 7);
    let page = entries(&app, site.id, &admin.token, "?after=2&limit=3").await;
    let seqs: Vec<i64> = page
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, vec![3, 4, 5]);
    assert!(
        entries(&app, site.id, OPERATOR, &format!("?after={n}"))
            .await
            .is_empty()
    );
    // A limit over the cap is the cap, not an error; a bad one is a 400.
    assert_eq!(
        entries(&app, site.id, OPERATOR, "?limit=100000")
            .await
            .len() as i64,
        n
    );
    for q in ["?after=abc", "?limit=-", "?after=1.5"] {
        let r = app
            .get(
                &format!("/api/v1/sites/{}/audit{q}", site.id),
                Some(OPERATOR),
            )
            .await;
        assert_eq!(r.status(), 400, "{q}");
        let v: Value = r.json().await.expect("error");
        assert_eq!(v["error"]["code"], "invalid_request");
    }
    // An agent may not read it; another site's admin does not see the site; no one sees an
    // unknown site.
    for path in ["audit", "audit/verify", "settings"] {
        let r = app
            .get(
                &format!("/api/v1/sites/{}/{path}", site.id),
                Some(&agent.token),
            )
            .await;
        assert_eq!(r.status(), 403, "{path}");
        let r = app
            .get(
                &format!("/api/v1/sites/{}/{path}", site.id),
                Some(&outsider.token),
            )
            .await;
        assert_eq!(r.status(), 404, "{path}");
        let r = app
            .get(&format!("/api/v1/sites/99999/{path}"), Some(OPERATOR))
            .await;
        assert_eq!(r.status(), 404, "{path}");
        let r = app
            .get(&format!("/api/v1/sites/{}/{path}", site.id), None)
            .await;
        assert_eq!(r.status(), 401, "{path}");
    }
    // The API has no call that changes or deletes an entry.
    for method in [
        reqwest::Method::DELETE,
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
    ] {
        let r = app
            .client
            .request(
                method.clone(),
                app.url(&format!("/api/v1/sites/{}/audit", site.id)),
            )
            .bearer_auth(OPERATOR)
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 405, "{method}");
    }
}

#[tokio::test]
async fn the_chain_verifies_after_10000_entries_and_names_an_entry_altered_or_removed() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let store = app.server().app().store.clone();
    // 10,000 entries appended by 8 writers at once: the chain stays one line.
    let before = verify(&app, site.id).await["entries"].as_i64().expect("n");
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            let site = confidant_core::SiteId(site.id);
            tokio::spawn(async move {
                for i in 0..1250 {
                    let entry = AuditEntry::new(
                        site,
                        1_700_000_000_000 + i,
                        Actor::System,
                        "retention.purged",
                        json!({"writer": w, "i": i}),
                    );
                    store.audit(&entry).await.expect("append");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    let n = before + 10_000;
    let v = verify(&app, site.id).await;
    assert_eq!(v, json!({"ok": true, "entries": n, "brokenSeq": null}));

    // The database itself refuses to change or delete an entry.
    let url = app.database_url.clone();
    let err = sql(&url, "UPDATE audit_log SET action = 'x' WHERE seq = 5000")
        .await
        .expect_err("update refused");
    assert!(err.contains("append-only"), "{err}");
    let err = sql(&url, "DELETE FROM audit_log WHERE seq = 5000")
        .await
        .expect_err("delete refused");
    assert!(err.contains("append-only"), "{err}");
    assert_eq!(verify(&app, site.id).await["ok"], true);

    // Someone with the database's owner rights lifts the guard and alters entry 5000: the
    // verify call names it.
    lift_guard(&url).await;
    let target = json!({"writer": 9, "i": 9}).to_string();
    sql(
        &url,
        &format!(
            "UPDATE audit_log SET target = '{target}' WHERE site_id = {} AND seq = 5000",
            site.id
        ),
    )
    .await
    .expect("tamper");
    let v = verify(&app, site.id).await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["brokenSeq"], 5000);
    // Recomputing that entry's hash does not help: its successor no longer matches.
    let entry = entries(&app, site.id, OPERATOR, "?after=4999&limit=1").await;
    let prev = entries(&app, site.id, OPERATOR, "?after=4998&limit=1").await;
    let mut body = entry[0].clone();
    body.as_object_mut().expect("entry").remove("hash");
    let rehash = confidant_store::chain_hash(prev[0]["hash"].as_str().expect("hash"), &body);
    sql(
        &url,
        &format!(
            "UPDATE audit_log SET hash = '{rehash}' WHERE site_id = {} AND seq = 5000",
            site.id
        ),
    )
    .await
    .expect("tamper");
    assert_eq!(verify(&app, site.id).await["brokenSeq"], 5001);

    // Another site: an entry removed from the middle, then the newest one removed.
    let other = app.site("Other").await;
    for i in 0..5 {
        store
            .audit(&AuditEntry::new(
                confidant_core::SiteId(other.id),
                i,
                Actor::Operator,
                "settings.updated",
                json!({"i": i}),
            ))
            .await
            .expect("append");
    }
    let last = verify(&app, other.id).await["entries"].as_i64().expect("n");
    sql(
        &url,
        &format!(
            "DELETE FROM audit_log WHERE site_id = {} AND seq = {last}",
            other.id
        ),
    )
    .await
    .expect("tamper");
    let v = verify(&app, other.id).await;
    assert_eq!(
        (v["ok"].clone(), v["brokenSeq"].clone()),
        (json!(false), json!(last))
    );
    sql(
        &url,
        &format!(
            "DELETE FROM audit_log WHERE site_id = {} AND seq = 2",
            other.id
        ),
    )
    .await
    .expect("tamper");
    assert_eq!(verify(&app, other.id).await["brokenSeq"], 2);
}

/// What an attacker with the database owner's rights does first.
async fn lift_guard(url: &str) {
    if backend() == "postgres" {
        sql(url, "ALTER TABLE audit_log DISABLE TRIGGER USER")
            .await
            .expect("disable");
    } else {
        for t in ["audit_log_no_update", "audit_log_no_delete"] {
            sql(url, &format!("DROP TRIGGER {t}")).await.expect("drop");
        }
    }
}

#[tokio::test]
async fn site_settings_are_checked_field_by_field_and_change_only_what_is_sent() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let admin = site.agent("admin@example.test", "admin").await;
    let agent = site.agent("agent@example.test", "agent").await;
    let (status, v) = admin.get("/settings").await;
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({"idleTimeoutMinutes": 60, "requireTotp": false, "retentionDays": null})
    );
    for bad in [
        json!({"idleTimeoutMinutes": 0}),
        json!({"idleTimeoutMinutes": 1441}),
        json!({"retentionDays": -1}),
        json!({"retentionDays": 3651}),
        json!({"retentionDays": "30"}),
        json!({"requireTotp": "yes"}),
        json!({"idleTimeoutMinutes": 1.5}),
    ] {
        let r = admin.put("/settings", &bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        let e: Value = r.json().await.expect("error");
        assert_eq!(e["error"]["code"], "invalid_request", "{bad}");
    }
    // Both bad fields are named at once.
    let r = admin
        .put(
            "/settings",
            &json!({"idleTimeoutMinutes": 0, "retentionDays": 9999}),
        )
        .await;
    let e: Value = r.json().await.expect("error");
    let msg = e["error"]["message"].as_str().expect("message");
    assert!(
        msg.contains("idleTimeoutMinutes") && msg.contains("retentionDays"),
        "{msg}"
    );
    // Nothing was stored by the refused calls.
    assert_eq!(admin.get("/settings").await.1["idleTimeoutMinutes"], 60);

    let r = admin
        .put(
            "/settings",
            &json!({"idleTimeoutMinutes": 15, "requireTotp": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = admin.put("/settings", &json!({"retentionDays": 0})).await;
    let v: Value = r.json().await.expect("settings");
    assert_eq!(
        v,
        json!({"idleTimeoutMinutes": 15, "requireTotp": true, "retentionDays": 0})
    );
    let r = admin
        .put(
            "/settings",
            &json!({"idleTimeoutMinutes": null, "retentionDays": null}),
        )
        .await;
    let v: Value = r.json().await.expect("settings");
    assert_eq!(
        v,
        json!({"idleTimeoutMinutes": 60, "requireTotp": true, "retentionDays": null})
    );
    assert_eq!(admin.get("/settings").await.1, v);
    // An agent may not change them; the operator may.
    assert_eq!(
        agent
            .put("/settings", &json!({"requireTotp": false}))
            .await
            .status(),
        403
    );
    let r = app
        .put(
            &format!("/api/v1/sites/{}/settings", site.id),
            Some(OPERATOR),
            &json!({"requireTotp": false}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(admin.get("/settings").await.1["requireTotp"], false);
}

#[tokio::test]
async fn contacts_are_found_by_their_identity_or_an_attribute_value_within_their_site() {
    let app = TestApp::spawn_with(|s| s.rate_limits = false).await;
    let site = app.site("Acme").await;
    let m = site.messenger(json!({})).await;
    let agent = site.agent("agent@example.test", "agent").await;
    let mark = m.named_contact("mark.tylor@healthify.test", false).await;
    let jwt = hs256(
        SECRET,
        &json!({"sub": "c-0042", "exp": now() + 600, "comm100.name": "Ada Lovelace",
                "comm100.city": "London"}),
    );
    assert_eq!(m.authorize(&jwt).await.status(), 200);
    let pct = m.contact("100%_sure@example.test").await;
    let other = app.site("Other").await;
    let theirs = other.messenger(json!({})).await;
    theirs.contact("mark.twain@other.test").await;

    let found = |q: &'static str| {
        let agent = agent.clone();
        async move {
            let (status, v) = agent
                .get(&format!("/contacts?query={}", urlencode(q)))
                .await;
            assert_eq!(status, 200, "{q}: {v}");
            let mut ids: Vec<String> = v["contacts"]
                .as_array()
                .expect("contacts")
                .iter()
                .map(|c| c["identity"].as_str().expect("identity").to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(found("MARK").await, vec![mark.identity.clone()]);
    assert_eq!(found("lovelace").await, vec!["c-0042".to_owned()]);
    assert_eq!(found("london").await, vec!["c-0042".to_owned()]);
    // Attribute names are not values; `%` and `_` are plain characters.
    assert!(found("city").await.is_empty());
    assert_eq!(found("0%_").await, vec![pct.identity.clone()]);
    assert!(found("%").await.len() == 1);
    // The other site's Mark is never found.
    assert!(!found("mark").await.iter().any(|i| i.contains("twain")));
    for bad in ["", "%20%20"] {
        let (status, v) = agent.get(&format!("/contacts?query={bad}")).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    let (status, _) = agent.get("/contacts").await;
    assert_eq!(status, 400);
    let long = "x".repeat(257);
    let (status, _) = agent.get(&format!("/contacts?query={long}")).await;
    assert_eq!(status, 400);

    // At most 50, the most recently active first.
    let many: Vec<_> = (0..55)
        .map(|i| {
            let m = m.clone();
            tokio::spawn(async move { m.contact(&format!("bulk-{i:02}@example.test")).await })
        })
        .collect();
    for c in many {
        c.await.expect("contact");
    }
    assert_eq!(found("bulk-").await.len(), 50);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
