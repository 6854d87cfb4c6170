//! The `perago` binary: the CLI with the example targets registered.

fn main() {}
