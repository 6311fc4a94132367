pub mod admin;
pub mod assets;
pub mod authorize;
pub mod conversations;
pub mod demo;
pub mod health;
