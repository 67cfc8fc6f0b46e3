//! The `cutover` command line.

fn main() {
    let _ = cutover::engine::snapshot::Outcome::Succeeded;
}
