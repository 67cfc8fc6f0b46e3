//! The deployment engine: walks the plan through the seven stages, owns the
//! deployment state, the router, the metric source and the journal.

pub mod command;
pub mod snapshot;

pub use command::Command;
pub use snapshot::Snapshot;
