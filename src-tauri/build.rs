// The Tauri config sits at the repository root (one config for the whole product), while the
// desktop sources and their capabilities live under src-tauri/; tell tauri-build where to look.
fn main() {
    println!("cargo:rerun-if-changed=src-tauri/capabilities");
    let attributes = tauri_build::Attributes::new().capabilities_path_pattern("./src-tauri/capabilities/**/*");
    tauri_build::try_build(attributes).expect("tauri-build failed (check tauri.conf.json and src-tauri/capabilities)");
}
