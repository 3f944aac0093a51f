//! Compiles the small-batch switch in front of llamafile's tinyBLAS (csrc/small_batch.c says why).
//! Only binaries linked with `--wrap=llamafile_sgemm` use it; crates/cli/build.rs does that for
//! `quarry`, which runs every local model.
fn main() {
    println!("cargo:rerun-if-changed=csrc/small_batch.c");
    println!("cargo:rerun-if-changed=csrc/small_batch_wrap.c");
    cc::Build::new()
        .file("csrc/small_batch.c")
        .file("csrc/small_batch_wrap.c")
        .warnings(true)
        .compile("quarry_small_batch");
}
