//! The OpenAPI document: served, and complete — every registered route appears with its method.

use confidant_testkit::*;
use serde_json::Value;

#[tokio::test]
async fn every_route_is_documented_with_its_method() {
    let app = TestApp::spawn().await;
    let r = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let doc: Value = r.json().await.expect("json");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    let routes = confidant_testkit::server::routed();
    assert!(routes.len() > 20, "the route list looks empty");
    let mut missing = Vec::new();
    for (method, path) in &routes {
        if paths.get(*path).and_then(|p| p.get(*method)).is_none() {
            missing.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}"
    );
    // And nothing documented that the router does not serve.
    let mut extra = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().expect("item").keys() {
            if !routes.iter().any(|(m, p)| m == method && p == path) {
                extra.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
}

#[tokio::test]
async fn the_contract_paths_are_in_the_route_list() {
    let routes = confidant_testkit::server::routed();
    for (m, p) in [
        ("get", "/healthz"),
        ("get", "/livez"),
        ("get", "/metrics"),
        ("get", "/.well-known/jwks.json"),
        ("post", "/api/v1/sites"),
        ("get", "/api/v1/sites/{siteId}"),
        ("post", "/api/v1/sites/{siteId}/agents"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/logout"),
        ("post", "/api/v1/sites/{siteId}/messengers"),
        ("get", "/api/v1/sites/{siteId}/messengers"),
        ("get", "/api/v1/sites/{siteId}/messengers/{messengerId}"),
        (
            "put",
            "/api/v1/sites/{siteId}/messengers/{messengerId}/security",
        ),
        (
            "get",
            "/api/v1/sites/{siteId}/messengers/{messengerId}/installation-code",
        ),
        ("post", "/securemessage/authorize"),
        ("post", "/api/v1/securemessage/authorize"),
        ("get", "/api/v1/messenger/conversations"),
        ("post", "/api/v1/messenger/messages"),
        (
            "get",
            "/api/v1/messenger/conversations/{conversationId}/messages",
        ),
        ("get", "/api/v1/sites/{siteId}/conversations"),
        (
            "get",
            "/api/v1/sites/{siteId}/conversations/{conversationId}/messages",
        ),
        (
            "post",
            "/api/v1/sites/{siteId}/conversations/{conversationId}/messages",
        ),
        (
            "post",
            "/api/v1/sites/{siteId}/conversations/{conversationId}/close",
        ),
        ("get", "/api/v1/sites/{siteId}/contacts/{contactId}"),
        ("get", "/api/v1/messenger/ws"),
        ("get", "/api/v1/agent/ws"),
        ("get", "/messenger/v1/frame"),
    ] {
        assert!(routes.contains(&(m, p)), "{m} {p} is not routed");
    }
}
