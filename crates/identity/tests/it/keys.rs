//! PEM public keys as an admin pastes them into the Security tab.

use crate::common::*;
use confidant_identity::{KeyError, PublicKey};

const RSA_ALGS: [&str; 6] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
const ALL_ALGS: [&str; 14] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "Ed25519",
    "HS256", "HS384", "HS512", "none",
];

fn allowed(key: &PublicKey) -> Vec<&'static str> {
    ALL_ALGS.into_iter().filter(|alg| key.allows(alg)).collect()
}

#[test]
fn rsa_2048_spki_and_pkcs1() {
    for name in ["rsa2048.pub.pem", "rsa2048.pkcs1.pub.pem"] {
        let key = PublicKey::from_pem(&fixture(name)).unwrap();
        assert_eq!(allowed(&key), RSA_ALGS, "{name}");
        assert_eq!(format!("{key:?}"), "PublicKey(RSA 2048 bits)");
    }
    // Surrounding whitespace, as pasted from a terminal, is fine.
    let padded = format!("\n  {}  \n\n", fixture("rsa2048.pub.pem"));
    assert!(PublicKey::from_pem(&padded).is_ok());
}

#[test]
fn rsa_1024_is_refused_naming_its_bits() {
    let err = PublicKey::from_pem(&fixture("rsa1024.pub.pem")).unwrap_err();
    assert_eq!(err, KeyError::RsaTooSmall(1024));
    assert_eq!(
        err.to_string(),
        "the RSA key has 1024 bits; at least 2048 are required"
    );
}

#[test]
fn rsa_pss_restricted_keys_are_refused() {
    let err = PublicKey::from_pem(&fixture("rsapss.pub.pem")).unwrap_err();
    assert_eq!(err, KeyError::RsaPssRestricted);
    assert!(err.to_string().contains("RSASSA-PSS") && err.to_string().contains("plain RSA key"));
}

#[test]
fn ec_p256_and_p384() {
    let p256 = PublicKey::from_pem(&fixture("p256.pub.pem")).unwrap();
    assert_eq!(allowed(&p256), ["ES256"]);
    let p384 = PublicKey::from_pem(&fixture("p384.pub.pem")).unwrap();
    assert_eq!(allowed(&p384), ["ES384"]);
}

#[test]
fn secp256k1_is_refused_by_name() {
    let err = PublicKey::from_pem(&fixture("secp256k1.pub.pem")).unwrap_err();
    assert_eq!(err, KeyError::UnsupportedCurve("secp256k1".into()));
    assert_eq!(
        err.to_string(),
        "unsupported curve secp256k1; use P-256, P-384 or Ed25519"
    );
}

#[test]
fn ed25519_ok_ed448_refused() {
    let ed = PublicKey::from_pem(&fixture("ed25519.pub.pem")).unwrap();
    assert_eq!(allowed(&ed), ["EdDSA", "Ed25519"]);
    let err = PublicKey::from_pem(&fixture("ed448.pub.pem")).unwrap_err();
    assert_eq!(err, KeyError::UnsupportedKeyType("Ed448".into()));
}

#[test]
fn garbage_private_keys_and_certificates_are_refused() {
    for text in [
        "",
        "hello",
        "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        "-----BEGIN PUBLIC KEY-----\nnot base64 at all!\n-----END PUBLIC KEY-----",
        "-----BEGIN RSA PUBLIC KEY-----\nMAA=\n-----END RSA PUBLIC KEY-----",
    ] {
        assert!(PublicKey::from_pem(text).is_err(), "{text:?}");
    }
    // A truncated key: the PEM frame is fine, the DER inside is cut short.
    let der = pem::parse(fixture("rsa2048.pub.pem"))
        .unwrap()
        .into_contents();
    let cut = pem("PUBLIC KEY", der[..der.len() - 10].to_vec());
    assert!(matches!(
        PublicKey::from_pem(&cut),
        Err(KeyError::Invalid(_))
    ));
    // Trailing bytes after the structure.
    let long = pem("PUBLIC KEY", [der.clone(), vec![0]].concat());
    assert!(matches!(
        PublicKey::from_pem(&long),
        Err(KeyError::Invalid(_))
    ));
    // An SPKI under the PKCS#1 label, and the reverse.
    assert!(PublicKey::from_pem(&pem("RSA PUBLIC KEY", der)).is_err());
    let pkcs1 = pem::parse(fixture("rsa2048.pkcs1.pub.pem"))
        .unwrap()
        .into_contents();
    assert!(PublicKey::from_pem(&pem("PUBLIC KEY", pkcs1)).is_err());

    assert_eq!(
        PublicKey::from_pem(&fixture("p256.key.pem")).unwrap_err(),
        KeyError::PrivateKey
    );
    assert_eq!(
        PublicKey::from_pem(&fixture("rsa2048.key.pem")).unwrap_err(),
        KeyError::PrivateKey
    );
    let cert = pem("CERTIFICATE", vec![0x30, 0x00]);
    assert!(
        matches!(PublicKey::from_pem(&cert), Err(KeyError::WrongPemBlock(tag)) if tag == "CERTIFICATE")
    );
}

#[test]
fn an_ec_point_off_the_curve_is_refused() {
    let der = pem::parse(fixture("p256.pub.pem")).unwrap().into_contents();
    let mut bent = der.clone();
    let last = bent.len() - 1;
    bent[last] ^= 1; // y no longer matches x
    assert!(matches!(
        PublicKey::from_pem(&pem("PUBLIC KEY", bent)),
        Err(KeyError::Invalid(_))
    ));
}
