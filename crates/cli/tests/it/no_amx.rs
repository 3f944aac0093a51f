//! No AMX kernels in any build of `quarry`, on any build machine: llama.cpp's AMX matrix kernels
//! die with a general protection fault at the first product (ggml-org/llama.cpp#20824), and
//! `-march=native` on a CPU with AMX compiles them in. `.cargo/config.toml` keeps them out with
//! `-mno-amx-*`; these tests fail if a build has AMX instructions, reports an AMX buffer, or was
//! configured so that an AMX build machine would compile them in — whichever CPU runs the test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const SMALL: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";

/// The AMX instructions (tile configuration, loads, stores and the dot products).
const AMX_MNEMONICS: &[&str] = &[
    "ldtilecfg",
    "sttilecfg",
    "tileloadd",
    "tileloaddt1",
    "tilestored",
    "tilezero",
    "tilerelease",
    "tdpbssd",
    "tdpbsud",
    "tdpbusd",
    "tdpbuud",
    "tdpbf16ps",
    "tdpfp16ps",
];

/// AMX instructions in `file`, counted from `objdump -d` as it streams.
fn amx_instructions(file: &Path) -> usize {
    let mut child = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("objdump (binutils) is needed for this test: {e}"));
    let mut count = 0;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // "  4011a6:\ttileloadd (%rsi,%rdx,1),%tmm0": the mnemonic follows the address's tab.
        if let Some(insn) = line.split('\t').nth(1) {
            let mnemonic = insn.split_whitespace().next().unwrap_or("");
            if AMX_MNEMONICS.contains(&mnemonic) {
                count += 1;
            }
        }
    }
    assert!(child.wait().unwrap().success(), "objdump failed on {}", file.display());
    count
}

fn system() -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_quarry")).args(["system", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The scanner itself finds AMX code: a tile load compiled here counts, so a zero below means
/// none, not a scanner that never matches.
#[test]
fn the_scanner_finds_amx_instructions_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("tile.c");
    std::fs::write(
        &src,
        "#include <immintrin.h>\nvoid load(const void *p) { _tile_loadd(0, p, 64); _tile_release(); }\n",
    )
    .unwrap();
    let obj = dir.path().join("tile.o");
    let ok = Command::new("cc").args(["-O2", "-mamx-tile", "-c"]).arg(&src).arg("-o").arg(&obj).status().unwrap();
    assert!(ok.success());
    assert_eq!(amx_instructions(&obj), 2, "tileloadd and tilerelease");
}

#[test]
fn the_built_quarry_holds_no_amx_instructions() {
    let mut files = vec![PathBuf::from(env!("CARGO_BIN_EXE_quarry"))];
    // A portable build's CPU kernels live in the variant it loads.
    if let Some(p) = system()["cpu_variant"]["path"].as_str() {
        files.push(PathBuf::from(p));
    }
    for f in &files {
        assert_eq!(amx_instructions(f), 0, "{} has AMX instructions", f.display());
    }
}

/// What ggml does on a build machine with AMX, done here with the flags llama.cpp was built
/// with: `-march=sapphirerapids` stands for `-march=native` there. Without `-mno-amx-*` the
/// compiler defines `__AMX_INT8__`, and ggml compiles its AMX kernels (ggml-cpu/amx/mmq.cpp).
#[test]
fn an_amx_build_machine_would_compile_no_amx_kernels() {
    let flags = system()["build_flags"].as_str().unwrap_or_default().to_string();
    let out = Command::new("c++")
        .args(flags.split_whitespace())
        .args(["-march=sapphirerapids", "-dM", "-E", "-x", "c++", "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let defines = String::from_utf8_lossy(&out.stdout);
    for macro_name in ["__AMX_TILE__", "__AMX_INT8__", "__AMX_BF16__"] {
        assert!(!defines.contains(macro_name), "llama.cpp's flags ({flags:?}) leave {macro_name} on for an AMX CPU");
    }
}

/// With a model loaded, the engine reports no AMX buffer (ggml repacks weights into one when its
/// AMX kernels are in) and no AMX feature in its CPU backend.
#[test]
fn the_engine_reports_no_amx_buffer_with_a_model_loaded() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["serve", "--model", SMALL, "--port", "0", "--slots", "1", "--ctx", "512"])
        .env_remove("QUARRY_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ready: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?} (`make test` fetches the model)"));
    let port = ready["port"].as_u64().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let health: Value = rt.block_on(async {
        reqwest::get(format!("http://127.0.0.1:{port}/health")).await.unwrap().json().await.unwrap()
    });
    let _ = child.kill();
    let _ = child.wait();
    let system = &health["system"];
    let buffers: Vec<&str> =
        system["extra_buffer_types"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(buffers.iter().all(|b| !b.to_ascii_uppercase().contains("AMX")), "{buffers:?}");
    let cpu = system["backends"].as_array().unwrap().iter().find(|b| b["name"] == "CPU").expect("a CPU backend");
    let amx: Vec<&String> = cpu["features"].as_object().unwrap().keys().filter(|k| k.starts_with("AMX")).collect();
    assert!(amx.is_empty(), "the CPU backend was built with {amx:?}");
    assert!(!system["llama"].as_str().unwrap().contains("AMX"), "{}", system["llama"]);
}
