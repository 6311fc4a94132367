//! The OpenAPI document: served, generated from the router (utoipa-axum, so a route cannot be
//! left out), covering every path of the contract, with schemas for bodies and answers.

use confidant_testkit::*;
use serde_json::Value;

/// `(method, path)` of every call that CONTRACT.md §4–§9 names, as OpenAPI spells paths.
fn contract_calls() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONTRACT.md");
    let text = std::fs::read_to_string(&root).expect("docs/CONTRACT.md");
    // The sections of the first and this wave that the server implements today.
    let end = text.find("## 10.").unwrap_or(text.len());
    let mut calls = Vec::new();
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
        for (i, _) in text[..end].match_indices(&format!("{method} /")) {
            let rest = &text[i + method.len() + 1..end];
            let path: String = rest
                .chars()
                .take_while(|c| !matches!(c, ' ' | '`' | '?' | ')' | '|' | '\n'))
                .collect();
            calls.push((method.to_lowercase(), path.trim_end_matches('.').to_owned()));
        }
    }
    calls.sort();
    calls.dedup();
    calls
}

#[tokio::test]
async fn every_contract_call_is_documented_with_schemas() {
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
    let calls = contract_calls();
    assert!(
        calls.len() > 20,
        "the contract's calls were not found: {calls:?}"
    );
    let missing: Vec<_> = calls
        .iter()
        .filter(|(m, p)| paths.get(p).and_then(|item| item.get(m)).is_none())
        .collect();
    assert!(missing.is_empty(), "contract calls missing: {missing:?}");

    // Every operation answers something documented; JSON bodies carry a schema.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "Message",
        "Conversation",
        "Contact",
        "Messenger",
        "AuthorizeAnswer",
        "ErrorBody",
    ] {
        assert!(schemas.contains_key(name), "no schema {name}");
    }
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("item") {
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path}: no responses");
            let bodies = responses
                .values()
                .chain(op.get("requestBody"))
                .filter_map(|r| r["content"]["application/json"].get("schema"));
            for schema in bodies {
                assert!(
                    schema.get("$ref").is_some()
                        || schema.get("type").is_some()
                        || schema.get("oneOf").is_some(),
                    "{method} {path}: a JSON body without a schema: {schema}"
                );
            }
        }
    }
}

#[tokio::test]
async fn documented_routes_are_served() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .get("/api/v1/openapi.json", None)
        .await
        .json()
        .await
        .expect("json");
    // Every documented path answers its method with something other than "no such route"
    // (a 404 for a missing id is fine; a 405 or the static-file 404 is not).
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let concrete = path
            .replace("{siteId}", "10000")
            .replace("{messengerId}", "00000000-0000-0000-0000-000000000001")
            .replace("{conversationId}", "00000000-0000-0000-0000-000000000002")
            .replace("{contactId}", "00000000-0000-0000-0000-000000000003")
            .replace("{agentId}", "00000000-0000-0000-0000-000000000004");
        for method in item.as_object().expect("item").keys() {
            let req = match method.as_str() {
                "get" => app.client.get(app.url(&concrete)),
                "post" => app
                    .client
                    .post(app.url(&concrete))
                    .json(&serde_json::json!({})),
                "put" => app
                    .client
                    .put(app.url(&concrete))
                    .json(&serde_json::json!({})),
                "delete" => app.client.delete(app.url(&concrete)),
                "patch" => app
                    .client
                    .patch(app.url(&concrete))
                    .json(&serde_json::json!({})),
                other => panic!("unexpected method {other}"),
            };
            let r = req.send().await.expect("request");
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            assert_ne!(status, 405, "{method} {path}: {body}");
            assert!(
                !(status == 404 && body.contains("page not found")),
                "{method} {path} is documented but not routed"
            );
        }
    }
}
