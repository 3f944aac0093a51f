//! The extraction worker on its own, for this crate's tests and for embedders that do not ship
//! the `quarry` binary; `quarry worker extract` runs exactly the same code. Arguments are ignored.
fn main() {
    quarry_index::extract::worker::main()
}
