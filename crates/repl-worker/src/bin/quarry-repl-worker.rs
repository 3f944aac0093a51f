//! The REPL worker on its own, for this crate's tests and for embedders that do not ship the
//! `quarry` binary. `quarry worker repl` runs exactly the same code; arguments are ignored.
fn main() {
    quarry_repl_worker::main()
}
