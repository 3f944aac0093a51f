//! Link arguments `quarry` needs and a library cannot give it (a library's `cargo:rustc-link-arg`
//! does not reach binaries, so they live in the binary's own package).
fn main() {
    // `quarry` embeds CPython (the REPL worker is `quarry worker repl`). Link it with an rpath to
    // the interpreter's library directory: without one, a pyenv or other non-system Python builds
    // fine and then silently loads the system's older libpython at run time.
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    let config = pyo3_build_config::get();
    if let Some(dir) = config.lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }

    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if std::env::var_os("CARGO_FEATURE_PORTABLE").is_some() {
        // A portable build links llama.cpp's shared libraries and loads ggml's CPU kernels at
        // run time: find both beside the executable or in an installed ../lib/quarry. Its
        // tinyBLAS lives in the kernel libraries, out of `--wrap`'s reach, so the small-batch
        // switch stays out.
        if linux {
            println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN:$ORIGIN/../lib/quarry");
        }
        return;
    }
    // `quarry` runs every local model: route ggml's tinyBLAS calls through quarry-engine's
    // small-batch switch (crates/engine/csrc/small_batch.c). `--undefined` pulls the wrapper in
    // from quarry-engine's archive, which the linker has passed by the time ggml asks for it. GNU
    // ld and lld have `--wrap`; Apple's linker does not, and there the stock kernels stay.
    if linux {
        println!("cargo:rustc-link-arg-bins=-Wl,--wrap=llamafile_sgemm");
        println!("cargo:rustc-link-arg-bins=-Wl,--undefined=__wrap_llamafile_sgemm");
    }
}
