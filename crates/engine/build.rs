//! Compiles the small-batch switch in front of llamafile's tinyBLAS (csrc/small_batch.c says why;
//! only binaries linked with `--wrap=llamafile_sgemm` use it, and crates/cli/build.rs does that
//! for `quarry`), and records the C++ flags llama.cpp is built with, so `quarry system` and the
//! no-AMX test can show that no AMX kernel can be compiled in (.cargo/config.toml says why).
fn main() {
    println!("cargo:rerun-if-changed=csrc/small_batch.c");
    println!("cargo:rerun-if-changed=csrc/small_batch_wrap.c");
    cc::Build::new()
        .file("csrc/small_batch.c")
        .file("csrc/small_batch_wrap.c")
        .warnings(true)
        .compile("quarry_small_batch");

    // The variables the cc crate reads (and cmake-rs through it, for llama-cpp-sys-2's build of
    // llama.cpp), first match wins: the same environment reaches every build script.
    let target = std::env::var("TARGET").unwrap_or_default();
    let names = [
        format!("CXXFLAGS_{target}"),
        format!("CXXFLAGS_{}", target.replace('-', "_")),
        "TARGET_CXXFLAGS".to_string(),
        "CXXFLAGS".to_string(),
    ];
    let mut flags = String::new();
    for name in &names {
        println!("cargo:rerun-if-env-changed={name}");
        if flags.is_empty() {
            if let Ok(v) = std::env::var(name) {
                flags = v;
            }
        }
    }
    println!("cargo:rustc-env=QUARRY_LLAMA_CXXFLAGS={flags}");
}
