//! The `cutover` binary: the command line of [`cutover::cli`].

fn main() {
    std::process::exit(cutover::cli::main());
}
