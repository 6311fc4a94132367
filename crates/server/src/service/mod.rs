//! The use cases. Each service owns what it needs (store, hub, caches) and answers in the
//! contract's terms (`ApiError`); the HTTP and WebSocket edge only translates to and from them.
//! Services import the store, the hub, identity and core — never the edge (`crate::http`).

pub mod access;
pub mod accounts;
pub mod appearance;
pub mod attachments;
pub mod audit;
pub mod authorize;
pub mod contacts;
pub mod conversations;
pub mod keys;
pub mod lifecycle;
pub mod messengers;
pub mod token_check;
pub mod webhooks;
pub mod workflow;
