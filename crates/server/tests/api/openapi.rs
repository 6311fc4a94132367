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
    let doc = document(&app).await;
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

#[tokio::test]
async fn every_operation_documents_the_error_body_and_the_site_id_range() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let mut site_params = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            assert_eq!(
                op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path}: no default error answer"
            );
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" && p["name"] == "siteId" {
                    site_params += 1;
                    assert_eq!(p["schema"]["type"], "integer", "{method} {path}");
                    assert_eq!(p["schema"]["minimum"], 0, "{method} {path}");
                    assert_eq!(
                        p["schema"]["maximum"], 9_007_199_254_740_991_i64,
                        "{method} {path}"
                    );
                }
            }
        }
    }
    assert!(site_params > 30, "{site_params}");
    // The largest documented site id is served; one more is refused before any lookup.
    let (s, _) = error_code(
        app.get("/api/v1/sites/9007199254740991", Some(OPERATOR))
            .await,
    )
    .await;
    assert_eq!(s, 404);
    let (s, code) = error_code(
        app.get("/api/v1/sites/9007199254740992", Some(OPERATOR))
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (400, "invalid_request"));
}

/// What schemathesis found: numbers written with a point are whole numbers when they have no
/// fraction, a body must be an object, and an operator naming a site that does not exist gets
/// 404 from every list (not an empty list, not a 500 from a foreign key).
#[tokio::test]
async fn json_edge_cases_found_by_the_schema_check() {
    let app = TestApp::spawn().await;
    let site = app.create_site("Acme").await;
    let put = |body: &'static str| {
        app.client
            .put(app.url(&format!("/api/v1/sites/{site}/settings")))
            .bearer_auth(OPERATOR)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (s, v) = json_of(
        put(r#"{"idleTimeoutMinutes": 290.0, "retentionDays": 3e1}"#)
            .await
            .expect("put"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["idleTimeoutMinutes"].as_i64(),
            v["retentionDays"].as_i64()
        ),
        (Some(290), Some(30))
    );
    let (s, v) = json_of(put(r#"{"idleTimeoutMinutes": 290.5}"#).await.expect("put")).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("idleTimeoutMinutes")),
        "{v}"
    );
    let (s, v) = json_of(put("[null, null]").await.expect("put")).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("JSON object")),
        "{v}"
    );

    for path in ["canned-replies", "conversations", "contacts?query=a"] {
        let (s, code) = error_code(
            app.get(&format!("/api/v1/sites/99999/{path}"), Some(OPERATOR))
                .await,
        )
        .await;
        assert_eq!((s, code.as_str()), (404, "not_found"), "{path}");
    }
    let r = app
        .client
        .post(app.url("/api/v1/sites/99999/canned-replies"))
        .bearer_auth(OPERATOR)
        .json(&serde_json::json!({"shortcut": "hi", "title": "Hi", "body": "Hello"}))
        .send()
        .await
        .expect("post");
    assert_eq!(error_code(r).await, (404, "not_found".to_owned()));
}

/// docs/API.md is the OpenAPI document rendered for reading. When a route or schema changes,
/// `CONFIDANT_UPDATE_API_MD=1 cargo test -p confidant --test api api_md` writes it again.
#[tokio::test]
async fn api_md_is_the_served_document_rendered() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let rendered = render_markdown(&doc);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/API.md");
    if std::env::var_os("CONFIDANT_UPDATE_API_MD").is_some() {
        std::fs::write(&path, &rendered).expect("write docs/API.md");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == rendered,
        "docs/API.md is not the served document: run \
         CONFIDANT_UPDATE_API_MD=1 cargo test -p confidant --test api api_md"
    );
}

fn render_markdown(doc: &Value) -> String {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# The HTTP API\n\n\
         Generated from the server's OpenAPI document (`GET /api/v1/openapi.json`) by the test\n\
         `api_md_is_the_served_document_rendered`; do not edit by hand. docs/CONTRACT.md is the\n\
         contract; this page lists every operation with its parameters, bodies and answers, and\n\
         every schema. Every operation may also answer an error (`default`): the body\n\
         `{{\"error\": {{\"code\", \"message\"}}}}` with a code of CONTRACT §3.\n"
    );
    // Operations by tag, then path and method.
    let mut by_tag: BTreeMap<String, Vec<(String, String, &Value)>> = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let tag = op["tags"][0].as_str().unwrap_or("other").to_owned();
            by_tag
                .entry(tag)
                .or_default()
                .push((path.clone(), method.to_uppercase(), op));
        }
    }
    let _ = writeln!(out, "## Operations\n");
    for (tag, ops) in &by_tag {
        let _ = writeln!(out, "### {tag}\n");
        for (path, method, op) in ops {
            let _ = writeln!(out, "#### `{method} {path}`\n");
            for key in ["summary", "description"] {
                if let Some(text) = op[key].as_str() {
                    let _ = writeln!(out, "{}\n", one_line(text));
                }
            }
            if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
                let _ = writeln!(
                    out,
                    "| parameter | in | type | required | rules | about |\n| --- | --- | --- | --- | --- | --- |"
                );
                for p in params {
                    let _ = writeln!(
                        out,
                        "| `{}` | {} | {} | {} | {} | {} |",
                        p["name"].as_str().unwrap_or_default(),
                        p["in"].as_str().unwrap_or_default(),
                        type_of(&p["schema"]),
                        if p["required"] == true { "yes" } else { "no" },
                        rules(&p["schema"]),
                        cell(
                            p["description"]
                                .as_str()
                                .or(p["schema"]["description"].as_str())
                                .unwrap_or_default()
                        ),
                    );
                }
                out.push('\n');
            }
            if let Some(content) = op["requestBody"]["content"].as_object() {
                for (mime, c) in content {
                    let _ = writeln!(out, "Body ({mime}): {}\n", type_of(&c["schema"]));
                }
            }
            let _ = writeln!(out, "| answer | body | meaning |\n| --- | --- | --- |");
            for (status, r) in op["responses"].as_object().into_iter().flatten() {
                let body = r["content"]
                    .as_object()
                    .and_then(|c| c.values().next())
                    .map(|c| type_of(&c["schema"]))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "| {status} | {body} | {} |",
                    cell(r["description"].as_str().unwrap_or_default())
                );
            }
            out.push('\n');
        }
    }
    let _ = writeln!(out, "## Schemas\n");
    for (name, schema) in doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let _ = writeln!(out, "### {name}\n");
        if let Some(text) = schema["description"].as_str() {
            let _ = writeln!(out, "{}\n", one_line(text));
        }
        match schema["properties"].as_object() {
            Some(props) => {
                let required: Vec<&str> = schema["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let _ = writeln!(
                    out,
                    "| field | type | required | rules | about |\n| --- | --- | --- | --- | --- |"
                );
                for (field, s) in props {
                    let _ = writeln!(
                        out,
                        "| `{field}` | {} | {} | {} | {} |",
                        type_of(s),
                        if required.contains(&field.as_str()) {
                            "yes"
                        } else {
                            "no"
                        },
                        rules(s),
                        cell(s["description"].as_str().unwrap_or_default()),
                    );
                }
                out.push('\n');
            }
            None => {
                let _ = writeln!(out, "{} {}\n", type_of(schema), rules(schema));
            }
        }
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// A schema's type in words, with links to named schemas.
fn type_of(s: &Value) -> String {
    if let Some(r) = s["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("[{name}](#{})", name.to_lowercase());
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(items) = s[key].as_array() {
            let parts: Vec<String> = items.iter().map(type_of).filter(|t| t != "null").collect();
            return parts.join(if key == "allOf" { " and " } else { " or " });
        }
    }
    if let Some(values) = s["enum"].as_array() {
        let words: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
        return words.join(" \\| ");
    }
    let types: Vec<String> = match &s["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => vec!["any".to_owned()],
    };
    types
        .iter()
        .map(|t| match t.as_str() {
            "array" => format!("array of {}", type_of(&s["items"])),
            other => other.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The constraints of a schema, in short.
fn rules(s: &Value) -> String {
    let mut r = Vec::new();
    if let Some(f) = s["format"].as_str() {
        r.push(f.to_owned());
    }
    for (key, word) in [
        ("minLength", "≥ {} chars"),
        ("maxLength", "≤ {} chars"),
        ("minimum", "≥ {}"),
        ("maximum", "≤ {}"),
        ("minItems", "≥ {} items"),
        ("maxItems", "≤ {} items"),
    ] {
        if let Some(v) = s.get(key).filter(|v| !v.is_null()) {
            r.push(word.replace("{}", &v.to_string()));
        }
    }
    if let Some(p) = s["pattern"].as_str() {
        r.push(format!("matches `{}`", p.replace('|', "\\|")));
    }
    r.join(", ")
}

fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

fn cell(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

/// The served OpenAPI document.
async fn document(app: &TestApp) -> Value {
    app.get("/api/v1/openapi.json", None)
        .await
        .json()
        .await
        .expect("json")
}
