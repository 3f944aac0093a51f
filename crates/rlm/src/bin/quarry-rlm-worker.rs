//! The REPL worker on its own, for this crate's integration tests (which need the real sandboxed
//! REPL but cannot see another package's binaries). `quarry worker repl` runs the same code.
fn main() {
    quarry_repl::worker::main()
}
