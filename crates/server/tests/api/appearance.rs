//! A messenger's appearance and availability (`…/messengers/{id}/appearance`, docs/OPERATING.md
//! "Appearance & hours"): validation in plain words, the open/closed answer of the public
//! config (deterministic: hours around the clock on every day against none at all), roles,
//! cross-site ids, the audit entry, and the contact's `me` call.

use confidant_testkit::*;
use serde_json::{Value, json};

fn path(site: i64, messenger: &str) -> String {
    format!("/api/v1/sites/{site}/messengers/{messenger}/appearance")
}

fn config_path(m: &Messenger) -> String {
    format!(
        "/api/v1/messenger/config?siteId={}&messengerId={}",
        m.site, m.id
    )
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Every day 00:00–24:00: open whatever the time.
fn always() -> Value {
    DAYS.iter()
        .map(|d| ((*d).to_owned(), json!([["00:00", "24:00"]])))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

async fn put(app: &TestApp, token: &str, m: &Messenger, body: &Value) -> (u16, String, Value) {
    answer(app.put(&path(m.site, &m.id), Some(token), body).await).await
}

async fn config(app: &TestApp, m: &Messenger) -> Value {
    let (s, _, v) = answer(app.get(&config_path(m), None).await).await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test]
async fn defaults_round_trip_and_public_config() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let m = site.messenger(json!({})).await;

    // Never set: the defaults; the frame's title is the messenger's name, always open.
    let (s, _, v) = answer(app.get(&path(m.site, &m.id), Some(OPERATOR)).await).await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"title": null, "greeting": null, "color": "#1f5fbf", "awayMessage": null,
               "replyTime": null, "businessHours": null})
    );
    let c = config(&app, &m).await;
    assert_eq!(c["title"], "Support");
    assert_eq!(c["open"], true);
    assert_eq!(c["nextOpen"], Value::Null);
    assert_eq!(c["emailNotices"], false);

    let body = json!({"title": "Acme care team", "greeting": "Hello! Ask us anything.",
        "color": "#0A7B4F", "awayMessage": "We're away right now.", "replyTime": "within one business day",
        "businessHours": {"timeZone": "Europe/Berlin", "weekly": always()}});
    let (s, _, v) = put(&app, OPERATOR, &m, &body).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["color"], "#0a7b4f");
    assert_eq!(
        v["businessHours"]["weekly"]["sun"],
        json!([["00:00", "24:00"]])
    );
    let (_, _, read) = answer(app.get(&path(m.site, &m.id), Some(OPERATOR)).await).await;
    assert_eq!(read, v);

    // Open around the clock in Berlin, whatever the time of the test.
    let c = config(&app, &m).await;
    assert_eq!(c["title"], "Acme care team");
    assert_eq!(c["greeting"], "Hello! Ask us anything.");
    assert_eq!(c["color"], "#0a7b4f");
    assert_eq!(c["awayMessage"], "We're away right now.");
    assert_eq!(c["replyTime"], "within one business day");
    assert_eq!(c["businessHours"]["timeZone"], "Europe/Berlin");
    assert_eq!(c["open"], true);
    assert_eq!(c["nextOpen"], Value::Null);
    assert_eq!(c["nextClose"], Value::Null);

    // No hours on any day: closed, whatever the time, and no next opening.
    let closed = json!({"awayMessage": "Closed for the holidays.",
        "businessHours": {"timeZone": "America/New_York", "weekly": {}}});
    let (s, _, _) = put(&app, OPERATOR, &m, &closed).await;
    assert_eq!(s, 200);
    let c = config(&app, &m).await;
    assert_eq!(c["open"], false);
    assert_eq!(c["nextOpen"], Value::Null);
    assert_eq!(c["awayMessage"], "Closed for the holidays.");
    // A PUT replaces the whole: the title is gone, the name is back, the colour is the default.
    assert_eq!(c["title"], "Support");
    assert_eq!(c["color"], "#1f5fbf");

    // Hours on one weekday only (today's in the zone, an hour that has passed or not): closed
    // or open, the server names the next change, and it lies ahead within a week.
    let (s, _, _) = put(
        &app,
        OPERATOR,
        &m,
        &json!({"businessHours": {"timeZone": "UTC", "weekly": {"wed": [["10:00", "11:00"]]}}}),
    )
    .await;
    assert_eq!(s, 200);
    let c = config(&app, &m).await;
    let next = if c["open"] == true {
        &c["nextClose"]
    } else {
        &c["nextOpen"]
    };
    let next = time::OffsetDateTime::parse(
        next.as_str().expect("the next change"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    let ahead = next - time::OffsetDateTime::now_utc();
    assert!(
        ahead > time::Duration::ZERO && ahead <= time::Duration::days(7),
        "{c}"
    );
    assert_eq!(next.weekday(), time::Weekday::Wednesday);
    assert!(next.hour() == 10 || next.hour() == 11, "{c}");
}

#[tokio::test]
async fn the_frame_page_carries_the_look_for_its_first_paint() {
    let app = TestApp::spawn().await;
    let m = app.site("Acme").await.messenger(json!({})).await;
    let (s, _, _) = put(
        &app,
        OPERATOR,
        &m,
        &json!({"title": "Night </script><b>desk", "color": "#112233", "awayMessage": "Back at nine",
                "businessHours": {"timeZone": "UTC", "weekly": {}}}),
    )
    .await;
    assert_eq!(s, 200);
    let r = app
        .get(
            &format!("/messenger/v1/frame?siteId={}&messengerId={}", m.site, m.id),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("\"color\":\"#112233\""), "{html}");
    assert!(html.contains("\"open\":false"));
    // The title is data, escaped out of the script block.
    assert!(html.contains("Night \\u003c/script\\u003e\\u003cb\\u003edesk"));
    assert!(!html.contains("</script><b>"));
}

#[tokio::test]
async fn bad_values_are_refused_in_plain_words() {
    let app = TestApp::spawn().await;
    let m = app.site("Acme").await.messenger(json!({})).await;
    for (body, words) in [
        (
            json!({"color": "blue"}),
            "color: must be a colour written #RRGGBB",
        ),
        (json!({"color": "#12345"}), "color: must be a colour"),
        (
            json!({"title": "x".repeat(81)}),
            "title: must be at most 80 characters",
        ),
        (json!({"colour": "#ffffff"}), "colour: unknown field"),
        (json!({"replyTime": 3}), "replyTime: must be a string"),
        (
            json!({"businessHours": {"timeZone": "Europe/Atlantis", "weekly": {}}}),
            "businessHours.timeZone: \"Europe/Atlantis\" is not a known time zone",
        ),
        (
            json!({"businessHours": {"weekly": {}}}),
            "businessHours.timeZone: required",
        ),
        (
            json!({"businessHours": {"timeZone": "Europe/Berlin", "weekly": {"mon": [["17:00", "09:00"]]}}}),
            "businessHours.weekly.mon[0]: ends at 09:00 before it starts at 17:00",
        ),
        (
            json!({"businessHours": {"timeZone": "Europe/Berlin", "weekly": {"tue": [["09:00", "13:00"], ["12:00", "17:00"]]}}}),
            "businessHours.weekly.tue: 09:00–13:00 and 12:00–17:00 overlap",
        ),
        (
            json!({"businessHours": {"timeZone": "Europe/Berlin", "weekly": {"Monday": []}}}),
            "businessHours.weekly.Monday: unknown day",
        ),
        (
            json!({"businessHours": {"timeZone": "Europe/Berlin", "weekly": {"mon": [["9am", "5pm"]]}}}),
            "businessHours.weekly.mon[0]: the start \"9am\" must be a time",
        ),
        (json!("title"), "the body must be a JSON object"),
    ] {
        let (s, code, v) = put(&app, OPERATOR, &m, &body).await;
        assert_eq!((s, code.as_str()), (400, "invalid_request"), "{body}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(words), "{body}: {message}");
    }
    // Malformed JSON and oversized bodies are client mistakes too, never a 500.
    let r = reqwest::Client::new()
        .put(app.url(&path(m.site, &m.id)))
        .bearer_auth(OPERATOR)
        .header("content-type", "application/json")
        .body("{\"title\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (400, "invalid_request".to_owned()));
    let huge = json!({"greeting": "x".repeat(300 * 1024)});
    let (s, code, _) = put(&app, OPERATOR, &m, &huge).await;
    assert_eq!((s, code.as_str()), (413, "payload_too_large"));
    // Nothing was stored by any of them.
    let (_, _, v) = answer(app.get(&path(m.site, &m.id), Some(OPERATOR)).await).await;
    assert_eq!(v["businessHours"], Value::Null);
    assert_eq!(v["color"], "#1f5fbf");
}

#[tokio::test]
async fn roles_cross_site_and_audit() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let m = site.messenger(json!({})).await;
    let admin = site.agent("admin@acme.test", "admin").await;
    let agent = site.agent("agent@acme.test", "agent").await;
    let other = app.site("Globex").await;
    let other_m = other.messenger(json!({})).await;
    let stranger = other.agent("admin@globex.test", "admin").await;
    let body = json!({"title": "Acme care", "color": "#aa0000"});

    // The site's admin changes it; the audit log names the changed fields.
    let (s, _, v) = put(&app, &admin.token, &m, &body).await;
    assert_eq!(s, 200, "{v}");
    let (s, log) = admin.get("/audit?limit=1000").await;
    assert_eq!(s, 200);
    let entry = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| e["action"] == "appearance.updated")
        .expect("an appearance.updated entry")
        .clone();
    assert_eq!(entry["target"]["messengerId"], m.id.as_str());
    assert_eq!(entry["target"]["fields"], json!(["color", "title"]));
    assert_eq!(entry["actor"]["email"], "admin@acme.test");
    let (s, v) = admin.get("/audit/verify").await;
    assert_eq!((s, v["ok"].clone()), (200, json!(true)));

    // An agent reads it and may not change it.
    let (s, v) = agent.get(&format!("/messengers/{}/appearance", m.id)).await;
    assert_eq!((s, v["title"].clone()), (200, json!("Acme care")));
    let (s, code, _) = put(&app, &agent.token, &m, &json!({})).await;
    assert_eq!((s, code.as_str()), (403, "forbidden"));

    // Another site's admin: neither this site's path nor this messenger under its own site.
    let (s, _) = error_code(app.get(&path(m.site, &m.id), Some(&stranger.token)).await).await;
    assert_eq!(s, 404);
    let (s, _, _) = put(&app, &stranger.token, &m, &json!({"title": "pwned"})).await;
    assert_eq!(s, 404);
    let r = app
        .put(
            &path(other.id, &m.id),
            Some(&stranger.token),
            &json!({"title": "pwned"}),
        )
        .await;
    assert_eq!(error_code(r).await, (404, "messenger_not_found".to_owned()));
    let r = app.get(&path(other.id, &m.id), Some(&stranger.token)).await;
    assert_eq!(error_code(r).await, (404, "messenger_not_found".to_owned()));
    // Nor does the operator reach a messenger under the wrong site.
    let r = app
        .put(
            &path(site.id, &other_m.id),
            Some(OPERATOR),
            &json!({"title": "x"}),
        )
        .await;
    assert_eq!(error_code(r).await, (404, "messenger_not_found".to_owned()));
    // Unauthenticated, forged, bad ids.
    let r = app.put(&path(m.site, &m.id), None, &json!({})).await;
    assert_eq!(error_code(r).await.0, 401);
    let r = app
        .get(&path(m.site, &m.id), Some("forged.token.here"))
        .await;
    assert_eq!(error_code(r).await.0, 401);
    let r = app.get(&path(m.site, "not-a-uuid"), Some(OPERATOR)).await;
    assert_eq!(error_code(r).await.0, 400);
    // A contact's access token is not an agent's.
    let contact = m.contact("mark@acme.test").await;
    let r = app
        .put(&path(m.site, &m.id), Some(&contact.token), &json!({}))
        .await;
    assert_eq!(error_code(r).await.0, 401);
    // What the stranger tried changed nothing.
    let c = config(&app, &m).await;
    assert_eq!(c["title"], "Acme care");
    assert_eq!(c["color"], "#aa0000");
    assert_eq!(config(&app, &other_m).await["title"], "Support");
}

#[tokio::test]
async fn email_notices_need_the_setting_and_a_mail_server() {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(|s| s.smtp_url = Some(sink.url())).await;
    let m = app.site("Acme").await.messenger(json!({})).await;
    assert_eq!(config(&app, &m).await["emailNotices"], false);
    let notices = format!("/api/v1/sites/{}/messengers/{}/notifications", m.site, m.id);
    let on = json!({"email": {"enabled": true, "linkUrl": "https://portal.example.com/messages"}});
    assert_eq!(app.put(&notices, Some(OPERATOR), &on).await.status(), 200);
    assert_eq!(config(&app, &m).await["emailNotices"], true);

    // The same setting on a server without SMTP: no email would go out, so none is promised.
    let plain = TestApp::spawn().await;
    let m = plain.site("Acme").await.messenger(json!({})).await;
    let notices = format!("/api/v1/sites/{}/messengers/{}/notifications", m.site, m.id);
    assert_eq!(plain.put(&notices, Some(OPERATOR), &on).await.status(), 200);
    assert_eq!(config(&plain, &m).await["emailNotices"], false);
}

#[tokio::test]
async fn the_contact_reads_who_is_signed_in() {
    let app = TestApp::spawn().await;
    let m = app.site("Acme").await.messenger(json!({})).await;
    let jwt = jwt::hs256(
        SECRET,
        &json!({"sub": "mark@healthify.test", "exp": jwt::now() + 600,
                "comm100.name": "Mark Tylor", "comm100.email": "mark.t@healthify.test"}),
    );
    let (s, _, v) = answer(m.authorize(&jwt).await).await;
    assert_eq!(s, 200, "{v}");
    let token = v["accessToken"].as_str().unwrap().to_owned();
    let (s, _, me) = answer(app.get("/api/v1/messenger/me", Some(&token)).await).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["identity"], "mark@healthify.test");
    assert_eq!(me["attributes"]["name"], "Mark Tylor");
    assert_eq!(me["attributes"]["email"], "mark.t@healthify.test");
    assert_eq!(me["contactId"], v["contact"]["contactId"]);

    // Another contact sees itself, not Mark.
    let other = m.contact("jane@healthify.test").await;
    let (_, _, me) = answer(app.get("/api/v1/messenger/me", Some(&other.token)).await).await;
    assert_eq!(me["identity"], "jane@healthify.test");
    // Without a token, with a forged one or an agent's: 401.
    for token in [None, Some("eyJhbGciOiJub25lIn0.e30."), Some(OPERATOR)] {
        let r = app.get("/api/v1/messenger/me", token).await;
        assert_eq!(error_code(r).await.0, 401, "{token:?}");
    }
}
