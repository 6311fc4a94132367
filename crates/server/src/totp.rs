//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA-1, 6 digits,
//! 30-second steps, one step either side accepted (CONTRACT §12). Built on aws-lc-rs's HMAC,
//! which the server links already; base32 (RFC 4648, no padding) is the secret's text form
//! that authenticator apps read.

use aws_lc_rs::hmac;

/// Seconds per step.
pub const STEP_SECONDS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Bytes of a new secret (160 bits, RFC 4226's recommendation).
const SECRET_BYTES: usize = 20;
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new random secret, in base32.
pub fn new_secret() -> String {
    let mut b = [0u8; SECRET_BYTES];
    aws_lc_rs::rand::fill(&mut b).unwrap_or_else(|_| std::process::abort());
    base32_encode(&b)
}

/// The step of Unix time `unix_seconds`.
pub fn step_at(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// HOTP (RFC 4226) of `counter` with `digits` digits.
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> String {
    let k = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mac = hmac::sign(&k, &counter.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    let code = u64::from(binary) % 10u64.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// The step (among `now`'s and one either side) whose code is `code`, if any. A code that is
/// not six ASCII digits matches nothing.
pub fn matching_step(secret_base32: &str, code: &str, unix_seconds: i64) -> Option<i64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let key = base32_decode(secret_base32)?;
    let now = step_at(unix_seconds);
    [now - 1, now, now + 1].into_iter().find(|&step| {
        u64::try_from(step).is_ok_and(|c| {
            aws_lc_rs::constant_time::verify_slices_are_equal(
                hotp(&key, c, DIGITS).as_bytes(),
                code.as_bytes(),
            )
            .is_ok()
        })
    })
}

/// The `otpauth://` URL that authenticator apps take (as a QR code or by hand).
pub fn otpauth_url(email: &str, secret_base32: &str) -> String {
    let label: String =
        url::form_urlencoded::byte_serialize(format!("Confidant:{email}").as_bytes())
            .collect::<String>()
            // A label's colon separates issuer and account; keep it readable.
            .replace("%3A", ":");
    format!(
        "otpauth://totp/{label}?secret={secret_base32}&issuer=Confidant&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}"
    )
}

pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Base32 text (any case, spaces and padding ignored) as bytes; `None` if it is not base32.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !matches!(c, b' ' | b'=')) {
        let v = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())?;
        buf = (buf << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
        buf &= (1 << bits) - 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows: the seed is the ASCII "12345678901234567890".
    const SEED: &[u8] = b"12345678901234567890";
    const VECTORS: &[(i64, &str)] = &[
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        for &(t, code) in VECTORS {
            let step = u64::try_from(step_at(t)).expect("positive");
            assert_eq!(hotp(SEED, step, 8), code, "T = {t}");
            // The 6-digit code is the 8-digit one's last six digits (the same value mod 10^6).
            assert_eq!(hotp(SEED, step, 6), code[2..], "T = {t}, 6 digits");
        }
    }

    #[test]
    fn one_step_either_side_is_accepted_and_no_further() {
        let secret = base32_encode(SEED);
        let t = 1_234_567_890;
        let code = hotp(SEED, u64::try_from(step_at(t)).expect("positive"), 6);
        assert_eq!(matching_step(&secret, &code, t), Some(step_at(t)));
        assert_eq!(matching_step(&secret, &code, t + 30), Some(step_at(t)));
        assert_eq!(matching_step(&secret, &code, t - 30), Some(step_at(t)));
        assert_eq!(matching_step(&secret, &code, t + 60), None);
        assert_eq!(matching_step(&secret, &code, t - 60), None);
        assert_eq!(matching_step(&secret, "12345", t), None);
        assert_eq!(matching_step(&secret, "12345a", t), None);
        assert_eq!(matching_step(&secret, &format!(" {code}"), t), None);
    }

    #[test]
    fn base32_round_trips_and_matches_rfc4648() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32_decode("MZXW6YTBOI======").as_deref(),
            Some(&b"foobar"[..])
        );
        assert_eq!(
            base32_decode("mzxw 6ytb oi").as_deref(),
            Some(&b"foobar"[..])
        );
        assert_eq!(base32_decode("MZ1"), None);
        let s = new_secret();
        assert_eq!(s.len(), 32);
        assert_eq!(base32_decode(&s).map(|b| b.len()), Some(20));
    }

    #[test]
    fn the_otpauth_url_names_the_issuer_and_account() {
        let u = otpauth_url("jo+x@acme.test", "ABC");
        assert!(
            u.starts_with(
                "otpauth://totp/Confidant:jo%2Bx%40acme.test?secret=ABC&issuer=Confidant"
            ),
            "{u}"
        );
    }
}
