//! Contact JWT verification (CONTRACT §6) and Confidant's own access tokens.
//!
//! No HTTP here: the JWKS fetcher and the clock are traits the caller provides, so tests
//! control both. The public API below is what the server relies on; keep it stable.

pub mod access;
pub mod clock;
pub mod contact;
mod error;
pub mod jwks;
mod jws;
pub mod keys;

pub use access::{AccessClaims, AccessError, AccessTokens, StoredSigningKey};
pub use clock::{Clock, ManualClock, SystemClock};
pub use contact::{
    Check, Checked, CompiledMethod, ContactVerifier, Failure, Policy, PreviousMethod, Signer,
    Verified, hmac_signs, peek,
};
pub use error::VerifyError;
pub use jwks::{FetchedJwks, JwksCache, JwksFetcher, parse_max_age};
pub use keys::{KeyError, PublicKey};
