//! Links this crate's own executables (the `quarry-repl-worker` binary and the test binaries,
//! which link libpython through pyo3) with an rpath to the interpreter's
//! library directory. Without it, a pyenv or other non-system Python builds fine and then
//! silently loads the system's older libpython at run time. `cargo:rustc-link-arg` only reaches
//! the package's own targets, so `crates/cli/build.rs` does the same for `quarry`.
fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    let config = pyo3_build_config::get();
    if let Some(dir) = config.lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
