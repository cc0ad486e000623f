//! rvsd (being written).
fn main() {}
