//! `quarry` embeds CPython (the REPL worker is `quarry worker repl`). Link it with an rpath to
//! the interpreter's library directory: without one, a pyenv or other non-system Python builds
//! fine and then silently loads the system's older libpython at run time. This has to live in
//! the binary's own package; a library's `cargo:rustc-link-arg` does not reach binaries.
fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    let config = pyo3_build_config::get();
    if let Some(dir) = config.lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
