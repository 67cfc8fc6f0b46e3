//! The operator's dashboard (ratatui): one view of the engine.
