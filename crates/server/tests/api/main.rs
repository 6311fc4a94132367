//! The server's integration tests, one binary: the real server in process (`TestApp`) or as
//! the real binary (`crash`, `scale`, `cli`), on SQLite or, with
//! `CONFIDANT_TEST_BACKEND=postgres`, on PostgreSQL. The kit is `crates/testkit`.

mod accounts;
mod admin;
mod appearance;
mod at_rest;
mod attachments;
mod audit;
mod authorize;
mod bus;
mod cli;
mod console_admin;
mod contract;
mod conversations;
mod crash;
mod edge;
mod hardening;
mod jobs;
mod jwks;
mod lifecycle;
mod notices;
mod openapi;
mod rollover;
mod scale;
mod smoke;
mod sockets;
mod typescript;
mod webhooks;
mod workflow;
mod ws;

/// The server binary this crate builds.
const BIN: &str = env!("CARGO_BIN_EXE_confidant");
mod token_check;
