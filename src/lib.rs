//! cutover: run a deployment as a procedure and steer canary and blue-green
//! releases live. The binary in `main.rs` is the command line over this library.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod check;
pub mod cli;
pub mod config;
pub mod control;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod haproxy_api;
pub mod headless;
pub mod judge;
pub mod lease;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod record;
pub mod redact;
pub mod router;
pub mod ui;
