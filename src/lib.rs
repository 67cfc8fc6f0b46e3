//! cutover: run a deployment as a procedure and steer canary and blue-green
//! releases live. The binary in `main.rs` is the command line over this library.

pub mod check;
pub mod config;
pub mod demo;
pub mod engine;
pub mod headless;
pub mod history;
pub mod journal;
pub mod lease;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod router;
pub mod ui;
