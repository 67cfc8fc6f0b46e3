//! The self-contained rehearsal: sample service, generated traffic, demo runs.

pub mod app;
pub mod load;
