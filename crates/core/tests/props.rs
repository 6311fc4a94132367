//! Properties of the domain's parsers of outside input: Security settings, allowed URLs and
//! message bodies. Each answers Ok or its typed error for any input, never panics, and keeps
//! the rules below. `PROPTEST_CASES` cases each (see `confidant_testkit::props`).

#![expect(clippy::unwrap_used, reason = "a test fails loudly")]

use confidant_core::message::{MAX_BODY_CHARS, MAX_CLIENT_MESSAGE_ID_CHARS, MessageError};
use confidant_core::security::Parsed;
use confidant_core::{
    AllowedUrl, ClientMessageId, FieldError, MessageBody, Security, SecurityInput, Validation,
};
use confidant_testkit::props::{
    apply, apply_json, config, edits, hostile_char, hostile_text, json_edits, json_value,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const GENERATED: &str = "generated-secret-0123456789-abcdefghijklmnop";

fn input(previous: Option<&Security>, allow_private_urls: bool) -> SecurityInput<'_> {
    SecurityInput {
        previous,
        allow_private_urls,
    }
}

fn parse(value: &Value, previous: Option<&Security>, http: bool) -> Result<Parsed, FieldError> {
    Security::parse(value, &input(previous, http), || GENERATED.to_owned())
}

/// Valid Security objects of every method, for mutation.
fn valid_security() -> impl Strategy<Value = Value> {
    proptest::sample::select(vec![
        json!({"validation": {"method": "sharedToken", "sharedToken": "s3cret-s3cret-s3cret-s3cret-s3cret-0"}}),
        json!({"validation": {"method": "sharedToken", "sharedToken": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "encoding": "base64url"},
               "allowedUrls": ["https://portal.example.com", "https://*.example.org/secure/"],
               "clockSkewSeconds": 30, "maxTokenLifetimeSeconds": 600,
               "issuer": "https://idp.example.com", "audience": "confidant"}),
        json!({"validation": {"method": "sharedToken", "sharedToken": null}, "contactIdentityKey": "comm100.email"}),
        json!({"validation": {"method": "publicKey", "publicKey": "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"},
               "allowedUrls": ["http://127.0.0.1:8081"]}),
        json!({"validation": {"method": "jwks", "jwksUrl": "https://idp.example.com/.well-known/jwks.json"},
               "clockSkewSeconds": 0, "maxTokenLifetimeSeconds": null}),
        json!({}),
    ])
}

/// A previous settings value, or none.
fn previous() -> impl Strategy<Value = Option<Security>> {
    proptest::option::of(
        valid_security()
            .prop_filter_map("valid", |v| parse(&v, None, false).ok().map(|p| p.security)),
    )
}

/// The shared token, when the settings have one.
fn secret_of(s: &Security) -> Option<&str> {
    match &s.validation {
        Validation::SharedToken { secret, .. } => Some(secret),
        _ => None,
    }
}

/// Parse, then check what holds for any answer: a typed error naming a field, or settings
/// whose public JSON never shows the shared token and which read back as themselves.
fn check_security(
    value: &Value,
    previous: Option<&Security>,
    http: bool,
) -> Result<(), TestCaseError> {
    let parsed = match parse(value, previous, http) {
        Ok(parsed) => parsed,
        Err(e) => {
            prop_assert!(!e.field.is_empty() && !e.message.is_empty(), "{e:?}");
            return Ok(());
        }
    };
    let s = &parsed.security;
    let public = s.public_json(None);
    if let Some(secret) = secret_of(s) {
        prop_assert_eq!(&public["validation"]["sharedToken"], &Value::Null);
        // The token may appear only where the admin wrote the same text into another field.
        let mut rest = public.clone();
        for echoed in ["contactIdentityKey", "allowedUrls", "issuer", "audience"] {
            rest.as_object_mut().unwrap().remove(echoed);
        }
        prop_assert!(
            !rest.to_string().contains(secret),
            "public JSON {public} shows the token"
        );
        if let Some(shown) = &parsed.generated_secret {
            prop_assert_eq!(shown, secret);
            let once = s.public_json(Some(shown));
            prop_assert_eq!(
                once["validation"]["sharedToken"].as_str(),
                Some(shown.as_str())
            );
        }
    }
    // What a read shows, saved again over itself, changes nothing (`sharedToken: null` keeps
    // the token), and saving that once more is still the same: the parse is idempotent.
    let again = parse(&public, Some(s), http);
    prop_assert!(
        again.is_ok(),
        "{public} does not parse back: {:?}",
        again.err()
    );
    let again = again.unwrap();
    prop_assert_eq!(&again.security, s);
    prop_assert!(again.generated_secret.is_none());
    for url in s.allowed() {
        prop_assert!(s.allowed_urls.contains(&url.to_string()));
    }
    prop_assert_eq!(s.allowed().len(), s.allowed_urls.len());
    Ok(())
}

/// Something that looks like an allowed URL: a scheme, maybe a wildcard, a host of hostile
/// characters, maybe a port, maybe a path.
fn url_like() -> impl Strategy<Value = String> {
    let scheme = proptest::sample::select(vec!["https", "http", "HTTPS", "ftp", "javascript", ""]);
    let host = prop_oneof![
        3 => proptest::collection::vec(hostile_char(), 1..24).prop_map(|cs| cs.into_iter().collect::<String>()),
        1 => proptest::sample::select(vec![
            "portal.example.com", "пример.example.org", "127.0.0.1", "[::1]", "2130706433",
            "xn--e1afmkfd.example", "a;b.example.com", "a,b.example", "a'b.example", "ex ample.com",
            "localhost", "EXAMPLE.COM.", "a..b", "-a-.example",
        ]).prop_map(str::to_owned),
    ];
    (
        scheme,
        proptest::option::of(Just("*.")),
        host,
        proptest::option::of(any::<u32>()),
        proptest::option::of(hostile_text(16)),
    )
        .prop_map(|(scheme, star, host, port, path)| {
            let mut s = format!("{scheme}://{}{host}", star.unwrap_or(""));
            if let Some(port) = port {
                s.push_str(&format!(":{}", port % 70_000));
            }
            if let Some(path) = path {
                s.push('/');
                s.push_str(&path);
            }
            s
        })
}

/// The characters an origin in a CSP source list or a header may never carry.
fn unsafe_in_origin(c: char) -> bool {
    matches!(c, ';' | ',' | '\'' | '"' | ' ') || c.is_control() || c.is_whitespace()
}

fn check_allowed_url(input: &str) -> Result<(), TestCaseError> {
    let Ok(url) = AllowedUrl::parse(input) else {
        return Ok(());
    };
    let text = url.to_string();
    let origin = url.csp_source();
    prop_assert!(
        !origin.chars().any(unsafe_in_origin),
        "{input:?} gives the origin {origin:?}"
    );
    prop_assert!(origin.is_ascii(), "{input:?} gives the origin {origin:?}");
    prop_assert!(text.starts_with(&origin));
    // The stored text parses back to the same entry, and prints the same.
    let back = AllowedUrl::parse(&text);
    prop_assert!(back.is_ok(), "{input:?} → {text:?} does not parse back");
    let back = back.unwrap();
    prop_assert_eq!(&back, &url);
    prop_assert_eq!(back.to_string(), text);
    // A bare entry allows its own origin.
    if !origin.contains('*') {
        prop_assert!(url.allows_origin(&origin), "{input:?}: {origin:?}");
    }
    Ok(())
}

/// Text of any length around the body limit, in characters of any width.
fn body_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => hostile_text(64),
        1 => (proptest::sample::select(vec!["a", "é", "😀", " ", "\n", "\u{0}"]), 9_990usize..10_010)
            .prop_map(|(c, n)| c.repeat(n)),
        1 => ("\\PC{1,4}", 0usize..10_005).prop_map(|(c, n)| c.repeat(n / c.chars().count().max(1))),
    ]
}

fn expected_body(s: &str) -> Result<(), MessageError> {
    let n = s.chars().count();
    if n == 0 || n > MAX_BODY_CHARS || s.trim().is_empty() {
        Err(MessageError::BodyLength)
    } else if s
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        Err(MessageError::BodyControl)
    } else {
        Ok(())
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn security_from_any_json(value in json_value(), prev in previous(), http in any::<bool>()) {
        check_security(&value, prev.as_ref(), http)?;
    }

    #[test]
    fn security_from_mutated_valid_settings(
        base in valid_security(),
        changes in json_edits(),
        prev in previous(),
        http in any::<bool>(),
    ) {
        check_security(&apply_json(&base, &changes), prev.as_ref(), http)?;
    }

    #[test]
    fn allowed_url_from_any_text(input in hostile_text(80)) {
        check_allowed_url(&input)?;
    }

    #[test]
    fn allowed_url_from_url_like_text(input in url_like(), changes in edits(), mutate in any::<bool>()) {
        let input = if mutate { apply(&input, &changes) } else { input };
        check_allowed_url(&input)?;
    }

    #[test]
    fn message_body_counts_characters(s in body_text()) {
        let expected = expected_body(&s);
        let got = MessageBody::parse(s.clone());
        prop_assert_eq!(got.as_ref().err(), expected.as_ref().err());
        if let Ok(body) = got {
            prop_assert_eq!(body.as_str(), s.as_str());
        }
        let id = ClientMessageId::parse(s.clone());
        let n = s.chars().count();
        prop_assert_eq!(
            id.is_ok(),
            (1..=MAX_CLIENT_MESSAGE_ID_CHARS).contains(&n) && !s.chars().any(char::is_control)
        );
    }
}
