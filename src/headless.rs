//! Headless output: one line (or one JSON object) per journaled event, for CI.

use std::io::Write;

use crate::record::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Writes one event; JSON lines are the journal lines themselves.
pub fn print_record(out: &mut impl Write, record: &Record, format: Format) -> std::io::Result<()> {
    match format {
        Format::Json => writeln!(out, "{}", record.line.text)?,
        Format::Text => writeln!(
            out,
            "{}  {}",
            record.line.ts.format("%H:%M:%S%.3f"),
            record.event.describe()
        )?,
    }
    out.flush()
}
