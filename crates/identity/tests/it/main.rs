//! The identity crate's integration tests, one binary: Contact JWT verification from the
//! attacker's side, the JWKS cache, PEM keys, published RFC vectors and Confidant's own access
//! tokens, and the properties of every parser of outside input (`props`). Keys and tokens come from the kit's JWT signer (`confidant_testkit::jwt`).

mod access_tokens;
mod attacks;
mod common;
mod jwks_cache;
mod keys;
mod props;
mod rfc_vectors;
mod rollover;
