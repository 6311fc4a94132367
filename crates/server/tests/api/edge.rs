//! The edge (CONTRACT §3, §4, §8): bad bodies answer the JSON error body and never 500,
//! unknown routes are JSON 404s, origins are enforced, health and metrics answer.

use confidant_testkit::jwt::*;
use confidant_testkit::*;
use reqwest::Method;
use reqwest::header;
use serde_json::{Value, json};

/// Send a raw body; return status, code and the content type, asserting the body is the
/// contract's JSON error shape whenever the status is not 2xx.
async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut r = app.client.request(method.clone(), app.url(path)).body(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        r = r.header(header::CONTENT_TYPE, ct);
    }
    let res = r.send().await.expect("send");
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = res.text().await.expect("text");
    assert_ne!(status, 500, "{method} {path}: 500 {text}");
    if status >= 300 {
        assert!(
            ct.starts_with("application/json"),
            "{method} {path}: {status} with content type {ct:?}: {text}"
        );
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"));
        let code = v["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no error.code: {text}"));
        assert!(v["error"]["message"].is_string(), "{text}");
        return (status, code.to_owned());
    }
    (status, String::new())
}

/// Every field any of the endpoints reads, each with a wrong type.
const WRONG_TYPES: &[u8] = br#"{"name": 5, "siteId": {}, "messengerId": 5, "contactJwt": 5, "email": [], "password": 5, "role": 5,
    "validation": 5, "clientMessageId": 5, "body": 5}"#;

/// A page origin no messenger allows.
const EVIL: &str = "https://evil.example";

/// A request with the bearer `token`, sent from a page of `origin`.
fn with_origin(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    origin: &str,
) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header(header::ORIGIN, origin)
}

#[tokio::test]
async fn bad_bodies_answer_json_errors() {
    let app = TestApp::spawn().await;
    let (site, m) = app.site_with_messenger().await;
    let at = app.access_token(site, &m, "mark@example.test").await;
    let json_ct = Some("application/json");
    let posts: Vec<(Method, String, Option<&str>)> = vec![
        (Method::POST, "/securemessage/authorize".into(), None),
        (Method::POST, "/api/v1/securemessage/authorize".into(), None),
        (Method::POST, "/api/v1/auth/login".into(), None),
        (Method::POST, "/api/v1/sites".into(), Some(OPERATOR)),
        (
            Method::POST,
            format!("/api/v1/sites/{site}/agents"),
            Some(OPERATOR),
        ),
        (
            Method::POST,
            format!("/api/v1/sites/{site}/messengers"),
            Some(OPERATOR),
        ),
        (
            Method::PUT,
            format!("/api/v1/sites/{site}/messengers/{m}/security"),
            Some(OPERATOR),
        ),
        (
            Method::POST,
            "/api/v1/messenger/messages".into(),
            Some(at.as_str()),
        ),
    ];
    for (method, path, token) in &posts {
        for body in [
            &b"{not json"[..],
            b"",
            b"[1,2",
            b"\xff\xfe",
            b"null",
            b"42",
            b"\"text\"",
            WRONG_TYPES,
        ] {
            let (s, c) = raw(&app, method.clone(), path, *token, json_ct, body.to_vec()).await;
            // Authorize reads a siteId or messengerId of the wrong type as naming no messenger.
            let lenient = body == WRONG_TYPES
                && path.ends_with("/authorize")
                && (s, c.as_str()) == (404, "messenger_not_found");
            assert!(
                lenient || (s, c.as_str()) == (400, "invalid_request"),
                "{method} {path} body {:?}: {s} {c}",
                String::from_utf8_lossy(body)
            );
        }
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
        ] {
            let (s, c) = raw(
                &app,
                method.clone(),
                path,
                *token,
                ct,
                b"{\"name\":\"x\"}".to_vec(),
            )
            .await;
            assert!(
                s == 400 || s == 415,
                "{method} {path} content type {ct:?}: {s}"
            );
            assert_eq!(c, "invalid_request");
        }
        // Just over the limit, as valid JSON: 413 before anything else looks at it.
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(256 * 1024));
        let (s, c) = raw(
            &app,
            method.clone(),
            path,
            *token,
            json_ct,
            big.into_bytes(),
        )
        .await;
        assert_eq!(
            (s, c.as_str()),
            (413, "payload_too_large"),
            "{method} {path}"
        );
    }
    // Over the limit without a Content-Length (chunked): the same 413.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        std::iter::once(Ok(br#"{"name": ""#.to_vec()))
            .chain((0..40).map(|_| Ok(vec![b'x'; 8 * 1024])))
            .chain(std::iter::once(Ok(br#""}"#.to_vec())))
            .collect();
    let r = app
        .client
        .post(app.url("/securemessage/authorize"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(r).await, (413, "payload_too_large".to_owned()));
    // Just under the limit is read (and then judged on its content).
    let under =
        json!({"siteId": site, "messengerId": m, "contactJwt": "x", "pad": "y".repeat(250 * 1024)})
            .to_string();
    let (s, c) = raw(
        &app,
        Method::POST,
        "/securemessage/authorize",
        None,
        json_ct,
        under.into_bytes(),
    )
    .await;
    assert_eq!((s, c.as_str()), (401, "token_malformed"));
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v1/nope",
        "/nope",
        "/api/v2/sites",
        "/api/v1/sites/10000/nothing/here",
        "/messenger/v1/nope.js",
        "/.well-known/nope",
    ] {
        let (s, c) = raw(&app, Method::GET, path, Some(OPERATOR), None, vec![]).await;
        assert_eq!((s, c.as_str()), (404, "not_found"), "{path}");
    }
    for (m, path) in [
        (Method::DELETE, "/api/v1/sites"),
        (Method::GET, "/securemessage/authorize"),
        (Method::PATCH, "/healthz"),
    ] {
        let (s, _) = raw(&app, m.clone(), path, Some(OPERATOR), None, vec![]).await;
        assert!(s == 404 || s == 405, "{m} {path}: {s}");
    }
    // Path traversal through the static files.
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/demo/..%2f..%2fCargo.toml",
    ] {
        let r = app.client.get(app.url(path)).send().await.expect("send");
        let text = r.text().await.expect("text");
        assert!(!text.contains("[package]"), "{path} served a source file");
    }
}

#[tokio::test]
async fn contact_calls_check_the_origin() {
    let app = TestApp::spawn().await;
    let site = app.create_site("Acme").await;
    let m = app.create_messenger(site, json!({"allowedUrls": ["https://portal.example.com", "https://*.example.org", "https://www.example.com/secure/"]})).await;
    let m = m["messengerId"].as_str().expect("id").to_owned();
    let jwt = hs256(SECRET, &json!({"sub": "mark", "exp": now() + 600}));
    let authorize = |origin: Option<&'static str>| {
        let mut r = app
            .client
            .post(app.url("/securemessage/authorize"))
            .json(&json!({"siteId": site, "messengerId": m, "contactJwt": jwt}));
        if let Some(o) = origin {
            r = r.header(header::ORIGIN, o);
        }
        r.send()
    };
    for origin in [
        "https://portal.example.com",
        "https://a.example.org",
        "https://deep.a.example.org",
        "https://www.example.com",
    ] {
        let r = authorize(Some(origin)).await.expect("send");
        assert_eq!(r.status(), 200, "{origin}");
        assert_eq!(
            r.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .and_then(|v| v.to_str().ok()),
            Some(origin)
        );
        let vary: Vec<String> = r
            .headers()
            .get_all(header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
            .collect();
        assert!(
            vary.iter()
                .any(|v| v.split(',').any(|p| p.trim() == "origin")),
            "{origin}: Vary {vary:?}"
        );
    }
    // The server's own origin (previews in the admin pages), and none at all (a backend).
    let own: &'static str = Box::leak(app.server().public_url().into_boxed_str());
    assert_eq!(authorize(Some(own)).await.expect("send").status(), 200);
    assert_eq!(authorize(None).await.expect("send").status(), 200);
    for origin in [
        EVIL,
        "https://example.org",
        "http://portal.example.com",
        "https://portal.example.com:8443",
        "https://portal.example.com.evil.test",
        "https://evilexample.org",
        "null",
    ] {
        let r = authorize(Some(origin)).await.expect("send");
        let (s, c) = error_code(r).await;
        assert_eq!((s, c.as_str()), (403, "origin_not_allowed"), "{origin}");
    }

    // A preflight is answered for any origin, carrying no token.
    for origin in [EVIL, "https://portal.example.com"] {
        for path in [
            "/securemessage/authorize",
            "/api/v1/securemessage/authorize",
            "/api/v1/messenger/messages",
        ] {
            let r = app
                .client
                .request(Method::OPTIONS, app.url(path))
                .header(header::ORIGIN, origin)
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
                .header(
                    header::ACCESS_CONTROL_REQUEST_HEADERS,
                    "content-type, authorization",
                )
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 204, "{origin} {path}");
            let h = r.headers();
            assert_eq!(
                h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                    .and_then(|v| v.to_str().ok()),
                Some(origin)
            );
            let methods = h
                .get(header::ACCESS_CONTROL_ALLOW_METHODS)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(methods.contains("POST"), "{methods}");
            let headers = h
                .get(header::ACCESS_CONTROL_ALLOW_HEADERS)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_ascii_lowercase();
            assert!(
                headers.contains("content-type") && headers.contains("authorization"),
                "{headers}"
            );
        }
    }

    // The contact API with an access token from a foreign page.
    let at = app.access_token(site, &m, "mark").await;
    for (origin, answer) in [
        (EVIL, (403, "origin_not_allowed")),
        ("https://portal.example.com", (200, "<no error body>")),
    ] {
        let r = with_origin(
            &app,
            Method::GET,
            "/api/v1/messenger/conversations",
            &at,
            origin,
        )
        .send()
        .await
        .expect("send");
        let (status, code) = error_code(r).await;
        assert_eq!((status, code.as_str()), answer, "{origin}");
    }
}

#[tokio::test]
async fn agent_and_admin_calls_accept_only_the_own_origin() {
    let app = TestApp::spawn().await;
    let (site, _) = app.site_with_messenger().await;
    app.create_agent(site, "jo@acme.test", "admin").await;
    let login = |origin: Option<&'static str>| {
        let mut r = app.client.post(app.url("/api/v1/auth/login")).json(
            &json!({"siteId": site, "email": "jo@acme.test", "password": "correct horse battery"}),
        );
        if let Some(o) = origin {
            r = r.header(header::ORIGIN, o);
        }
        r.send()
    };
    let r = login(Some(EVIL)).await.expect("send");
    assert_eq!(
        error_code(r).await,
        (403, "origin_not_allowed".to_owned()),
        "a foreign page may log an agent in"
    );
    let own: &'static str = Box::leak(app.server().public_url().into_boxed_str());
    let r = login(Some(own)).await.expect("send");
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();

    let site_path = format!("/api/v1/sites/{site}");
    for t in [OPERATOR, token.as_str()] {
        let r = with_origin(&app, Method::GET, &site_path, t, EVIL)
            .send()
            .await
            .expect("send");
        // No Access-Control-Allow-Origin for a foreign origin on admin calls.
        assert!(
            r.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none()
        );
        assert_eq!(error_code(r).await, (403, "origin_not_allowed".to_owned()));
        let r = with_origin(
            &app,
            Method::POST,
            &format!("{site_path}/messengers"),
            t,
            EVIL,
        )
        .json(&json!({"name": "x"}))
        .send()
        .await
        .expect("send");
        assert_eq!(error_code(r).await, (403, "origin_not_allowed".to_owned()));
        let r = with_origin(&app, Method::GET, &site_path, t, own)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    }
    let r = with_origin(&app, Method::POST, "/api/v1/auth/logout", &token, EVIL)
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(r).await, (403, "origin_not_allowed".to_owned()));
    // ...and that refused logout did not end the session.
    assert_eq!(
        app.get(&format!("/api/v1/sites/{site}"), Some(&token))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn health_liveness_and_metrics() {
    let app = TestApp::spawn().await;
    let r = app.get("/healthz", None).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "ok");
    let r = app.get("/livez", None).await;
    assert_eq!(r.status(), 200);

    let messenger = app.site("Acme").await.messenger(json!({})).await;
    messenger.contact("mark").await.send("c1", "hello").await;
    let _ = messenger.authorize("garbage").await;
    // An invented method is counted as "other": clients cannot add series at will.
    let odd = Method::from_bytes(b"BREW").expect("method");
    let r = app
        .client
        .request(odd, format!("{}/livez", app.base))
        .send()
        .await
        .expect("BREW");
    assert_eq!(r.status(), 405);
    let r = app.get("/metrics", None).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/plain"))
    );
    let text = r.text().await.expect("text");
    assert!(text.contains("confidant_http_requests_total"), "{text}");
    assert!(text.contains("confidant_authorize_total"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("confidant_authorize_total") && l.contains("token_malformed")),
        "{text}"
    );
    assert!(!text.contains(SECRET));
    assert!(!text.contains("BREW"), "{text}");
    // The send batch size is counted in sends, not seconds: a lone send lands in `le="1"`.
    let first_bucket = text
        .lines()
        .find(|l| l.starts_with("confidant_send_batch_size_bucket{le=\"1\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert!(first_bucket.is_some_and(|n| n >= 1.0), "{text}");
    let buckets: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("confidant_send_batch_size_bucket{le=\""))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert_eq!(
        buckets,
        ["1", "2", "4", "8", "16", "32", "64", "128", "256", "+Inf"],
        "{text}"
    );
    // The writer's fallbacks are there by reason from the first scrape, zeros included.
    for reason in ["close", "opens", "repeat", "changed", "error"] {
        let name = format!("confidant_send_batch_fallbacks_total{{reason=\"{reason}\"}}");
        assert!(
            text.lines().any(|l| l.starts_with(&name)),
            "{reason}: {text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("confidant_http_requests_total")
                && l.contains("method=\"other\"")),
        "{text}"
    );

    let r = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status(), 200);
    let jwks: Value = r.json().await.expect("json");
    assert!(
        jwks["keys"]
            .as_array()
            .is_some_and(|k| !k.is_empty() && k.iter().all(|k| k["kid"].is_string()))
    );
}

#[tokio::test]
async fn healthz_answers_503_when_the_database_is_gone() {
    let app = TestApp::spawn().await;
    app.server().close_store().await;
    let r = app.get("/healthz", None).await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.expect("json");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert_eq!(
        app.get("/livez", None).await.status(),
        200,
        "liveness does not touch the database"
    );
}
