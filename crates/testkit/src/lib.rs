//! The test kit of Confidant's integration tests.
//!
//! - [`jwt`]: the one JWT signer (HS*, RS*, PS*, ES*, EdDSA over any header) and the test keys;
//!   needs no server, so the identity crate's tests use it too.
//! - With the `server` feature: [`TestApp`] (the server in process on a loopback port with a
//!   fresh SQLite or PostgreSQL database), the typed actors of [`http`] (site, messenger,
//!   contact, agent), the one WebSocket client [`ws::Socket`], the one process spawner
//!   [`process`] (the real binary, NATS), a controllable [`jwks_server::JwksServer`], and
//!   [`server`]: every use of the server's internals, in one place.

pub mod jwt;
pub mod props;

#[cfg(feature = "server")]
pub mod app;
#[cfg(feature = "server")]
pub mod db;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod jwks_server;
#[cfg(feature = "server")]
pub mod process;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod smtp;
#[cfg(feature = "server")]
pub mod ws;

#[cfg(feature = "server")]
pub use app::{Desk, OPERATOR, TestApp, TestDb, backend};
#[cfg(feature = "server")]
pub use http::{
    Agent, Contact, Http, Messenger, PASSWORD, SECRET, Site, answer, error_code, fields_named,
    json_of, seqs,
};
#[cfg(feature = "server")]
pub use jwks_server::JwksServer;
#[cfg(feature = "server")]
pub use process::{Nats, ServerProcess};
#[cfg(feature = "server")]
pub use server::{SMTP_FROM, Settings};
#[cfg(feature = "server")]
pub use smtp::{Mail, SinkMode, SmtpSink};
#[cfg(feature = "server")]
pub use ws::{AGENT_WS, CONTACT_WS, Got, SOON, Socket};

/// The field paths a validation message names, in order: `field: problem`, several joined by
/// `; ` (docs/API-DESIGN.md, "Errors").
pub fn fields_in(message: &str) -> Vec<&str> {
    message
        .split("; ")
        .filter_map(|part| part.split_once(": ").map(|(field, _)| field))
        .collect()
}
