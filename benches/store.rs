//! Store benchmark: written with the store (see benches/RESULTS.md).
fn main() {}
