//! A deployment that outlives the terminal: the engine runs detached and
//! listens on `<state_dir>/control.sock`; dashboards attach from any
//! terminal, scripts send verbs, and every client is named by the kernel.
//! `protocol.rs` is the wire format, `server.rs` the engine's side,
//! `client.rs` the clients', `identity.rs` who a client is, `logs.rs` the
//! engine's log lines for attached log panes.

pub mod client;
pub mod identity;
pub mod logs;
pub mod protocol;
pub mod server;
