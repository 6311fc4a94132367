//! The compact JWS form (RFC 7515 §7.1), taken apart strictly before anything trusts it.
//!
//! Shared by Contact JWTs and Confidant's own access tokens. Only the parts' shape is checked
//! here; what the header and claims say is for the caller.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// The largest token accepted, in bytes.
pub(crate) const MAX_TOKEN_BYTES: usize = 8 * 1024;

pub(crate) struct Compact<'a> {
    /// `BASE64URL(header) '.' BASE64URL(payload)`: the bytes the signature covers.
    pub signing_input: &'a str,
    /// The third part, still base64url (checked to be valid).
    pub signature: &'a str,
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
}

/// Split and decode a compact JWS. The error is a short reason, never the token.
pub(crate) fn parse(token: &str) -> Result<Compact<'_>, &'static str> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err("the token is larger than 8 KiB");
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("a JWT has three parts separated by dots");
    };
    if header_b64.is_empty() || claims_b64.is_empty() {
        return Err("the header or the claims part is empty");
    }
    let header = decode_object(header_b64).ok_or("the header is not base64url of a JSON object")?;
    let claims =
        decode_object(claims_b64).ok_or("the claims are not base64url of a JSON object")?;
    // Decoded only to check it; the crypto layer decodes it again from the text.
    decode(signature).ok_or("the signature is not base64url")?;
    Ok(Compact {
        signing_input: &token[..header_b64.len() + 1 + claims_b64.len()],
        signature,
        header,
        claims,
    })
}

/// Unpadded base64url, refusing any other character (`=`, `+`, `/`, whitespace) and
/// non-canonical trailing bits, so one token has exactly one spelling.
pub(crate) fn decode(part: &str) -> Option<Vec<u8>> {
    if !part
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    URL_SAFE_NO_PAD.decode(part).ok()
}

/// Duplicate member names keep the last one, as RFC 7515 §5.2 permits.
fn decode_object(part: &str) -> Option<Map<String, Value>> {
    match serde_json::from_slice(&decode(part)?) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// Unpadded base64url text of some bytes.
pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        encode(s.as_bytes())
    }

    #[test]
    fn accepts_a_plain_token_and_an_empty_signature() {
        let token = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"sub":"a"}"#));
        let c = parse(&token).unwrap();
        assert_eq!(c.signature, "");
        assert_eq!(c.header["alg"], "none");
        assert_eq!(c.signing_input, &token[..token.len() - 1]);
    }

    #[test]
    fn refuses_bad_shapes() {
        let h = b64(r#"{"alg":"HS256"}"#);
        let c = b64(r#"{"sub":"a"}"#);
        for bad in [
            String::new(),
            format!("{h}.{c}"),
            format!("{h}.{c}.sig.extra"),
            format!(".{c}.sig"),
            format!("{h}..sig"),
            format!("{h}=.{c}.sig"),
            format!("{h}.{c}.si+g"),
            format!("{h}.{c}.si/g"),
            format!("{h}.{c}.sig="),
            format!(" {h}.{c}.sig"),
            format!("{h}.{c}.s"),  // one base64 character cannot encode a byte
            format!("{h}.{c}.AB"), // non-canonical trailing bits ("AA" is canonical)
            format!("{}.{c}.sig", b64("[1,2]")),
            format!("{h}.{}.sig", b64("\"text\"")),
            format!("{h}.{}.sig", b64("{not json")),
            format!("{h}.{}.sig", b64("null")),
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
        assert!(parse(&format!("{h}.{c}.AA")).is_ok());
    }

    #[test]
    fn size_cap_is_8_kib() {
        let h = b64(r#"{"alg":"HS256"}"#);
        let prefix = format!("{h}.{}.", b64(r#"{"sub":"a"}"#));
        // Signature text of a length that is valid base64url (not 1 mod 4).
        let mut fill = MAX_TOKEN_BYTES - prefix.len();
        while fill % 4 == 1 {
            fill -= 1;
        }
        let at_cap = format!("{prefix}{}", "A".repeat(fill));
        assert!(parse(&at_cap).is_ok());
        let over = format!("{prefix}{}", "A".repeat(MAX_TOKEN_BYTES + 4 - prefix.len()));
        assert_eq!(parse(&over).err(), Some("the token is larger than 8 KiB"));
    }
}
