//! Random tokens and their digests: session tokens, the operator token, generated secrets.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// 32 random bytes, base64url.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).unwrap_or_else(|_| no_entropy());
    URL_SAFE_NO_PAD.encode(b)
}

#[cold]
fn no_entropy() {
    // aws-lc-rs's RNG fails only if the OS has no entropy source; nothing safe can go on.
    std::process::abort();
}

/// Sessions are stored by the SHA-256 of their token, so a database leak yields no live token.
pub fn token_hash(token: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    URL_SAFE_NO_PAD.encode(d.as_ref())
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}
