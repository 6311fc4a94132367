//! Why a Contact JWT was refused, in the contract's words (CONTRACT §6). Shared by the
//! verifier (`contact`) and the JWKS cache (`jwks`), which import it and not each other.

use confidant_core::time_fmt::rfc3339_seconds;

/// Why a Contact JWT was refused. `Display` is for humans and never contains the token or a
/// secret; parts of the token it quotes (an `alg`, a `kid`) are cut short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the Contact JWT is malformed: {0}")]
    Malformed(String),
    #[error("the Contact JWT's algorithm is not allowed: {0}")]
    AlgorithmNotAllowed(String),
    #[error("no key verifies the Contact JWT: {0}")]
    KeyNotFound(String),
    #[error("the Contact JWT's signature is invalid")]
    SignatureInvalid,
    #[error("the Contact JWT has no numeric exp claim")]
    ExpiryMissing,
    #[error("the Contact JWT expired at {}", rfc3339_seconds(*.exp))]
    Expired { exp: i64 },
    #[error("the Contact JWT is not valid before {}", rfc3339_seconds(*.nbf))]
    NotYetValid { nbf: i64 },
    #[error("the Contact JWT lives too long: {0}")]
    LifetimeTooLong(String),
    #[error("the Contact JWT's iss is not the messenger's issuer")]
    IssuerMismatch,
    #[error("the Contact JWT's aud does not name the messenger's audience")]
    AudienceMismatch,
    #[error("the Contact JWT does not identify the contact: {0}")]
    IdentityMissing(String),
    #[error("the messenger's keys cannot be fetched: {0}")]
    JwksUnavailable(String),
}

impl VerifyError {
    /// The contract's error code (CONTRACT §6).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "token_malformed",
            Self::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            Self::KeyNotFound(_) => "key_not_found",
            Self::SignatureInvalid => "signature_invalid",
            Self::ExpiryMissing => "expiry_missing",
            Self::Expired { .. } => "token_expired",
            Self::NotYetValid { .. } => "token_not_yet_valid",
            Self::LifetimeTooLong(_) => "token_lifetime_too_long",
            Self::IssuerMismatch => "issuer_mismatch",
            Self::AudienceMismatch => "audience_mismatch",
            Self::IdentityMissing(_) => "identity_missing",
            Self::JwksUnavailable(_) => "jwks_unavailable",
        }
    }

    /// True only for `JwksUnavailable` (HTTP 503); every other error is a 401.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::JwksUnavailable(_))
    }
}

/// Quotes a value taken from the token, cut to a length that keeps messages short.
pub(crate) fn quote_short(s: &str) -> String {
    let cut: String = s.chars().take(32).collect();
    if cut.len() < s.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}
