//! Verification keys: a PEM from the Security tab or a JWK from a JWKS, parsed once.
//!
//! The key's type fixes the algorithms it verifies (CONTRACT §5): RSA → RS256/384/512 and
//! PS256/384/512, P-256 → ES256, P-384 → ES384, Ed25519 → EdDSA or Ed25519 (RFC 9864's name).
//! Keys are checked here, when they are saved or fetched, so a request never parses one.

use std::fmt;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
    VerificationAlgorithm,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use spki::der::asn1::UintRef;
use spki::der::{Decode, Reader, SliceReader};
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};

pub(crate) const MIN_RSA_BITS: usize = 2048;
/// aws-lc verifies RSA signatures for moduli of 2048 to 8192 bits; a bigger key could never
/// verify anything, so it is refused when saved rather than failing every token later.
pub(crate) const MAX_RSA_BITS: usize = 8192;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Why a key was refused. The text is shown to the admin who pasted it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM public key")]
    NotPem,
    #[error("this is a private key; paste the public key (-----BEGIN PUBLIC KEY-----) instead")]
    PrivateKey,
    #[error("a {0} PEM block is not a public key; use -----BEGIN PUBLIC KEY-----")]
    WrongPemBlock(String),
    #[error("the public key does not parse: {0}")]
    Invalid(&'static str),
    #[error("the RSA key has {0} bits; at least 2048 are required")]
    RsaTooSmall(usize),
    #[error("the RSA key has {0} bits; at most 8192 are supported")]
    RsaTooLarge(usize),
    #[error(
        "the key is restricted to RSASSA-PSS (OID id-RSASSA-PSS); convert it to a plain RSA key"
    )]
    RsaPssRestricted,
    #[error("unsupported curve {0}; use P-256, P-384 or Ed25519")]
    UnsupportedCurve(String),
    #[error("unsupported key type {0}; use RSA, EC P-256/P-384 or Ed25519")]
    UnsupportedKeyType(String),
    #[error("the shared token {0}")]
    SharedSecret(&'static str),
    #[error("the access-token signing key {0} is not an Ed25519 PKCS#8 key")]
    SigningKey(String),
    #[error("no access-token signing key is left that is not retired")]
    NoSigningKey,
}

/// What a key is; this alone decides which algorithms it verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa { bits: usize },
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    /// See [`PublicKey::cheap_to_verify`].
    pub(crate) fn cheap_to_verify(self) -> bool {
        match self {
            Self::Rsa { bits } => bits <= 4096,
            Self::P256 | Self::Ed25519 => true,
            Self::P384 => false,
        }
    }

    /// The algorithm to verify `alg` with, if this kind of key allows it. Names are
    /// case-sensitive (RFC 7515 §4.1.1).
    pub(crate) fn algorithm_for(self, alg: &str) -> Option<Algorithm> {
        Some(match (self, alg) {
            (Self::Rsa { .. }, "RS256") => Algorithm::RS256,
            (Self::Rsa { .. }, "RS384") => Algorithm::RS384,
            (Self::Rsa { .. }, "RS512") => Algorithm::RS512,
            (Self::Rsa { .. }, "PS256") => Algorithm::PS256,
            (Self::Rsa { .. }, "PS384") => Algorithm::PS384,
            (Self::Rsa { .. }, "PS512") => Algorithm::PS512,
            (Self::P256, "ES256") => Algorithm::ES256,
            (Self::P384, "ES384") => Algorithm::ES384,
            // RFC 9864 names the fully specified Ed25519 algorithm; with an Ed25519 key it is
            // the same computation as EdDSA.
            (Self::Ed25519, "EdDSA" | "Ed25519") => Algorithm::EdDSA,
            _ => return None,
        })
    }
}

/// The curves a JWK may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
}

/// A parsed verification key with the algorithms it fixes (RSA → RS256/384/512 + PS256/384/512,
/// P-256 → ES256, P-384 → ES384, Ed25519 → EdDSA and "Ed25519").
#[derive(Clone)]
pub struct PublicKey {
    kind: KeyKind,
    key: DecodingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            KeyKind::Rsa { bits } => write!(f, "PublicKey(RSA {bits} bits)"),
            KeyKind::P256 => write!(f, "PublicKey(EC P-256)"),
            KeyKind::P384 => write!(f, "PublicKey(EC P-384)"),
            KeyKind::Ed25519 => write!(f, "PublicKey(Ed25519)"),
        }
    }
}

impl PublicKey {
    /// A key in PEM: `BEGIN PUBLIC KEY` (SubjectPublicKeyInfo) or `BEGIN RSA PUBLIC KEY` (PKCS#1).
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        let block = pem::parse(pem.trim()).map_err(|_| KeyError::NotPem)?;
        match block.tag() {
            "PUBLIC KEY" => Self::from_spki_der(block.contents()),
            "RSA PUBLIC KEY" => Self::from_pkcs1_der(block.contents()),
            tag if tag.contains("PRIVATE KEY") => Err(KeyError::PrivateKey),
            tag => Err(KeyError::WrongPemBlock(tag.chars().take(40).collect())),
        }
    }

    /// Whether this key verifies tokens whose header names `alg`.
    pub fn allows(&self, alg: &str) -> bool {
        self.kind.algorithm_for(alg).is_some()
    }

    /// Whether one check with this key is cheap enough to run on an async worker: at most
    /// about 60 µs on the hardware in docs/PERFORMANCE.md (RSA up to 4096 bits about 20–65 µs,
    /// P-256 55, Ed25519 40), inside tokio's 10–100 µs guidance between awaits. P-384 (about
    /// 215 µs) and RSA above 4096 bits are not.
    pub(crate) fn cheap_to_verify(&self) -> bool {
        self.kind.cheap_to_verify()
    }

    /// What the messenger's key is and what it allows, for messages to the token's sender.
    pub fn describe(&self) -> String {
        let allowed = match self.kind {
            KeyKind::Rsa { .. } => "RS256, RS384, RS512, PS256, PS384 or PS512",
            KeyKind::P256 => "ES256",
            KeyKind::P384 => "ES384",
            KeyKind::Ed25519 => "EdDSA or Ed25519",
        };
        let what = match self.kind {
            KeyKind::Rsa { .. } => "an RSA",
            KeyKind::P256 => "a P-256",
            KeyKind::P384 => "a P-384",
            KeyKind::Ed25519 => "an Ed25519",
        };
        format!("{what} key allows {allowed}")
    }

    /// Checks a signature made with `alg`. An algorithm this key does not allow, a signature of
    /// the wrong length or an all-zero ECDSA signature are all just `false`.
    pub(crate) fn verify(&self, alg: &str, signing_input: &str, signature: &str) -> bool {
        self.kind.algorithm_for(alg).is_some_and(|alg| {
            jsonwebtoken::crypto::verify(signature, signing_input.as_bytes(), &self.key, alg)
                .unwrap_or(false)
        })
    }

    fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let spki = SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|_| KeyError::Invalid("not a SubjectPublicKeyInfo structure"))?;
        let key_bytes = spki
            .subject_public_key
            .as_bytes()
            .ok_or(KeyError::Invalid("the key's bit string is not whole bytes"))?;
        let oid = spki.algorithm.oid;
        if oid == RSA_ENCRYPTION {
            Self::from_pkcs1_der(key_bytes)
        } else if oid == ID_RSASSA_PSS {
            Err(KeyError::RsaPssRestricted)
        } else if oid == ID_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters_oid()
                .map_err(|_| KeyError::Invalid("an EC key must name its curve"))?;
            if curve == SECP256R1 {
                Self::ec_point(Curve::P256, key_bytes)
            } else if curve == SECP384R1 {
                Self::ec_point(Curve::P384, key_bytes)
            } else {
                Err(KeyError::UnsupportedCurve(curve_name(curve)))
            }
        } else if oid == ID_ED25519 {
            Self::ed25519(key_bytes)
        } else {
            Err(KeyError::UnsupportedKeyType(key_type_name(oid)))
        }
    }

    /// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
    fn from_pkcs1_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let parse = || -> spki::der::Result<(Vec<u8>, Vec<u8>)> {
            let mut reader = SliceReader::new(der)?;
            let parts = reader.sequence(|r| {
                let n = UintRef::decode(r)?;
                let e = UintRef::decode(r)?;
                Ok((n.as_bytes().to_vec(), e.as_bytes().to_vec()))
            })?;
            reader.finish(parts)
        };
        let (n, e) = parse().map_err(|_| KeyError::Invalid("not a PKCS#1 RSA public key"))?;
        Self::rsa(&n, &e)
    }

    /// An RSA key from its big-endian modulus and exponent.
    pub(crate) fn rsa(n: &[u8], e: &[u8]) -> Result<PublicKey, KeyError> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        let bits = bit_length(n);
        if bits < MIN_RSA_BITS {
            return Err(KeyError::RsaTooSmall(bits));
        }
        if bits > MAX_RSA_BITS {
            return Err(KeyError::RsaTooLarge(bits));
        }
        // aws-lc accepts odd exponents from 3 up to 2^33 - 1.
        if e.is_empty() || e.len() > 5 || e[e.len() - 1] & 1 == 0 || e == [1] {
            return Err(KeyError::Invalid("the RSA public exponent is not usable"));
        }
        Ok(PublicKey {
            kind: KeyKind::Rsa { bits },
            key: DecodingKey::from_rsa_raw_components(n, e),
        })
    }

    /// An EC key from its SEC1 point encoding; the point must lie on the curve.
    fn ec_point(curve: Curve, point: &[u8]) -> Result<PublicKey, KeyError> {
        let (algorithm, kind): (&'static dyn VerificationAlgorithm, _) = match curve {
            Curve::P256 => (&ECDSA_P256_SHA256_FIXED, KeyKind::P256),
            Curve::P384 => (&ECDSA_P384_SHA384_FIXED, KeyKind::P384),
        };
        ParsedPublicKey::new(algorithm, point)
            .map_err(|_| KeyError::Invalid("the EC point is not on the curve"))?;
        Ok(PublicKey {
            kind,
            key: DecodingKey::from_ec_der(point),
        })
    }

    /// An EC key from a JWK's `x` and `y` (each exactly the curve's field size).
    pub(crate) fn ec(curve: Curve, x: &[u8], y: &[u8]) -> Result<PublicKey, KeyError> {
        let size = match curve {
            Curve::P256 => 32,
            Curve::P384 => 48,
        };
        if x.len() != size || y.len() != size {
            return Err(KeyError::Invalid(
                "the EC coordinates have the wrong length",
            ));
        }
        let mut point = Vec::with_capacity(1 + 2 * size);
        point.push(0x04);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        Self::ec_point(curve, &point)
    }

    /// An Ed25519 key from its 32 raw bytes.
    pub(crate) fn ed25519(raw: &[u8]) -> Result<PublicKey, KeyError> {
        if raw.len() != 32 {
            return Err(KeyError::Invalid("an Ed25519 key is 32 bytes"));
        }
        ParsedPublicKey::new(&ED25519, raw)
            .map_err(|_| KeyError::Invalid("not a valid Ed25519 key"))?;
        Ok(PublicKey {
            kind: KeyKind::Ed25519,
            key: DecodingKey::from_ed_der(raw),
        })
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Bit length of a big-endian unsigned integer without leading zero bytes.
fn bit_length(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(first) => (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

fn curve_name(oid: ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.132.0.10" => "secp256k1".to_owned(),
        "1.3.132.0.35" => "P-521".to_owned(),
        "1.2.840.10045.3.1.1" => "P-192".to_owned(),
        "1.3.132.0.33" => "P-224".to_owned(),
        "1.3.36.3.3.2.8.1.1.7" => "brainpoolP256r1".to_owned(),
        "1.3.36.3.3.2.8.1.1.11" => "brainpoolP384r1".to_owned(),
        other => format!("(OID {other})"),
    }
}

fn key_type_name(oid: ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.101.113" => "Ed448".to_owned(),
        "1.3.101.110" => "X25519 (a key-agreement key)".to_owned(),
        "1.3.101.111" => "X448 (a key-agreement key)".to_owned(),
        "1.2.840.10040.4.1" => "DSA".to_owned(),
        other => format!("(OID {other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(strip_leading_zeros(&[0, 0, 0x7f])), 7);
    }

    #[test]
    fn only_keys_checked_within_a_workers_budget_are_checked_inline() {
        for bits in [2048, 3072, 4096] {
            assert!(KeyKind::Rsa { bits }.cheap_to_verify(), "RSA {bits}");
        }
        for bits in [4097, 8192] {
            assert!(!KeyKind::Rsa { bits }.cheap_to_verify(), "RSA {bits}");
        }
        assert!(KeyKind::P256.cheap_to_verify());
        assert!(KeyKind::Ed25519.cheap_to_verify());
        assert!(!KeyKind::P384.cheap_to_verify());
    }

    #[test]
    fn algorithms_follow_the_key_type() {
        let rsa = KeyKind::Rsa { bits: 2048 };
        for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
            assert!(rsa.algorithm_for(alg).is_some(), "{alg}");
        }
        for alg in ["HS256", "ES256", "EdDSA", "none", "rs256", "RS1", ""] {
            assert!(rsa.algorithm_for(alg).is_none(), "{alg}");
        }
        assert_eq!(KeyKind::P256.algorithm_for("ES256"), Some(Algorithm::ES256));
        assert_eq!(KeyKind::P256.algorithm_for("ES384"), None);
        assert_eq!(KeyKind::P384.algorithm_for("ES384"), Some(Algorithm::ES384));
        assert_eq!(KeyKind::P384.algorithm_for("ES256"), None);
        assert_eq!(
            KeyKind::Ed25519.algorithm_for("EdDSA"),
            Some(Algorithm::EdDSA)
        );
        assert_eq!(
            KeyKind::Ed25519.algorithm_for("Ed25519"),
            Some(Algorithm::EdDSA)
        );
        assert_eq!(KeyKind::Ed25519.algorithm_for("Ed448"), None);
        assert_eq!(KeyKind::Ed25519.algorithm_for("eddsa"), None);
    }

    #[test]
    fn rsa_exponent_and_size_rules() {
        let n = [vec![0x80], vec![0; 255]].concat(); // exactly 2048 bits
        assert!(PublicKey::rsa(&n, &[1, 0, 1]).is_ok());
        assert!(PublicKey::rsa(&[&[0u8, 0][..], &n].concat(), &[1, 0, 1]).is_ok());
        assert_eq!(
            PublicKey::rsa(&[0xff; 255], &[1, 0, 1]).err(),
            Some(KeyError::RsaTooSmall(2040))
        );
        assert!(matches!(
            PublicKey::rsa(&n, &[1]),
            Err(KeyError::Invalid(_))
        ));
        assert!(matches!(
            PublicKey::rsa(&n, &[2]),
            Err(KeyError::Invalid(_))
        ));
        assert!(matches!(PublicKey::rsa(&n, &[]), Err(KeyError::Invalid(_))));
        let huge = [vec![0x80], vec![0; 1024]].concat(); // 8200 bits
        assert_eq!(
            PublicKey::rsa(&huge, &[1, 0, 1]).err(),
            Some(KeyError::RsaTooLarge(8200))
        );
    }

    #[test]
    fn ec_and_ed_shapes() {
        assert!(PublicKey::ec(Curve::P256, &[1; 32], &[1; 31]).is_err());
        // Right lengths, but not a point on P-256.
        assert!(matches!(
            PublicKey::ec(Curve::P256, &[1; 32], &[1; 32]),
            Err(KeyError::Invalid(_))
        ));
        assert!(PublicKey::ed25519(&[0; 31]).is_err());
    }
}
