//! The browser API's reference as the server serves it: the TypeScript declarations
//! (`/messenger/v1/confidant.d.ts`), as text to any origin, naming every member and event the
//! loader has (the compile checks, `tsc --strict`, are in tests/browser/types.test.mjs); and the
//! guides as pages (`/docs/js-api`, `/docs/integrating`) with every page's headers.

use confidant_testkit::*;
use reqwest::header;

const DTS: &str = include_str!("../../../../web/messenger/v1/confidant.d.ts");
const LOADER: &str = include_str!("../../../../web/messenger/v1/loader.js");

#[tokio::test]
async fn the_declarations_are_served_as_text_to_any_origin() {
    let app = TestApp::spawn().await;
    let res = app.get("/messenger/v1/confidant.d.ts", None).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(
        h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        h.get(header::X_CONTENT_TYPE_OPTIONS)
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );
    assert_eq!(
        h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .and_then(|v| v.to_str().ok()),
        Some("*")
    );
    assert_eq!(res.text().await.expect("body"), DTS);
    // A neighbour that does not exist is still a JSON 404, not a text file.
    let missing = app.get("/messenger/v1/confidant.ts", None).await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn the_guides_are_pages_with_every_pages_headers() {
    let app = TestApp::spawn().await;
    let admin = app.get("/admin/", None).await;
    let csp = admin.headers()[header::CONTENT_SECURITY_POLICY].clone();
    for (path, h1) in [
        (
            "/docs/js-api",
            "Confidant messenger — JavaScript API for integrators",
        ),
        ("/docs/integrating", "Integrating Confidant"),
    ] {
        let res = app.get(path, None).await;
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers().clone();
        assert_eq!(
            h[header::CONTENT_TYPE],
            "text/html; charset=utf-8",
            "{path}"
        );
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], csp, "{path}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert_eq!(h[header::REFERRER_POLICY], "same-origin", "{path}");
        let html = res.text().await.expect("body");
        assert!(html.contains(&format!(">{h1}</h1>")), "{path}");
        assert!(html.contains("<main class=\"doc\">"), "{path}");
        assert!(!html.contains("<script"), "{path}: a script");
    }
    // The JS API guide links to the integrating guide's sections, which have those anchors.
    let js = app
        .get("/docs/js-api", None)
        .await
        .text()
        .await
        .expect("body");
    assert!(js.contains(r#"href="/docs/integrating#checking-a-token""#));
    let guide = app
        .get("/docs/integrating", None)
        .await
        .text()
        .await
        .expect("body");
    assert!(guide.contains(r#"<h2 id="checking-a-token">"#));
    for missing in ["/docs/nope", "/docs/JS-API.md", "/docs/../Cargo.toml"] {
        let (s, code) = error_code(app.get(missing, None).await).await;
        assert_eq!((s, code.as_str()), (404, "not_found"), "{missing}");
    }
}

/// The loader's public object and its events, as the loader itself spells them.
fn loader_members() -> (Vec<String>, Vec<String>) {
    let api = LOADER
        .split("var api = {")
        .nth(1)
        .and_then(|rest| rest.split("};").next())
        .expect("the loader's `var api = {…};`");
    let members = api
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let name: String = l
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            (!name.is_empty() && l[name.len()..].starts_with(':')).then_some(name)
        })
        .collect();
    let events = LOADER
        .split("var EVENTS = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("the loader's EVENTS")
        .split(',')
        .map(|e| e.trim().trim_matches('\'').to_owned())
        .collect();
    (members, events)
}

#[tokio::test]
async fn the_declarations_name_every_member_and_event_of_the_loader() {
    let (members, events) = loader_members();
    assert_eq!(
        members,
        ["version", "init", "shutdown", "open", "close", "on", "off"],
        "the loader's window.Confidant changed: update confidant.d.ts"
    );
    for m in &members {
        assert!(
            DTS.contains(&format!("readonly {m}: ")),
            "confidant.d.ts lacks {m}"
        );
    }
    assert_eq!(events, ["ready", "message", "unread", "error"]);
    let event_map = DTS
        .split("interface EventMap {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .expect("EventMap");
    for e in &events {
        assert!(event_map.contains(&format!("{e}: ")), "EventMap lacks {e}");
    }
    // The error codes the declarations list include every token code of CONTRACT §6.
    for code in [
        "token_malformed",
        "algorithm_not_allowed",
        "key_not_found",
        "signature_invalid",
        "expiry_missing",
        "token_expired",
        "token_not_yet_valid",
        "token_lifetime_too_long",
        "issuer_mismatch",
        "audience_mismatch",
        "identity_missing",
        "origin_not_allowed",
        "messenger_not_found",
    ] {
        assert!(DTS.contains(&format!("'{code}'")), "ErrorCode lacks {code}");
    }
}
