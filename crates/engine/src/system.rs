//! What the engine runs on: the CPU's instruction sets, the ggml backends and kernels this build
//! selected, and the thread counts — logged by `quarry serve` at start-up and returned by
//! `GET /health`, so a crash report already says which kernels ran (llama.cpp's `system_info`
//! line, with the CPU's side added).
//!
//! A portable build (`--features portable`) carries ggml's CPU kernels as run-time-loaded
//! variants (`libggml-cpu-<variant>.so`, x86-64-v2 up to AVX-512) and loads the best one this
//! CPU supports — except any variant with AMX: llama.cpp's AMX kernels crash
//! (ggml-org/llama.cpp#20824), so [`load_cpu_variant`] never loads `sapphirerapids`, the one
//! variant built with AMX, and the packaging leaves it out.

use std::collections::BTreeMap;
use std::ffi::{c_char, CStr};
use std::path::PathBuf;

use serde::Serialize;

/// The CPU and the kernels, as `/health` reports them.
#[derive(Debug, Clone, Serialize)]
pub struct SystemInfo {
    pub cpu: Cpu,
    /// How llama.cpp was built: `native` (for the build machine's CPU) or `portable` (CPU
    /// kernels chosen at run time).
    pub build: &'static str,
    /// The C++ flags llama.cpp was compiled with beyond ggml's own (`-mno-amx-*` keeps the
    /// AMX kernels out on every build machine).
    pub build_flags: &'static str,
    /// The CPU kernel variant a portable build loaded (`haswell`, `icelake`, ...), and from where.
    pub cpu_variant: Option<CpuVariant>,
    pub backends: Vec<Backend>,
    /// Buffer types weights can be repacked into for faster kernels (`CPU_REPACK`; `AMX` would
    /// mean the crashing AMX kernels are in use).
    pub extra_buffer_types: Vec<String>,
    /// llama.cpp's own `llama_print_system_info()` line.
    pub llama: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cpu {
    pub model: String,
    pub physical_cores: usize,
    pub logical_cpus: usize,
    /// The instruction-set extensions ggml's kernels care about that this CPU has.
    pub features: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuVariant {
    pub name: String,
    pub path: PathBuf,
    /// ggml's score for it on this CPU (higher is more instruction sets; 0 would not run).
    pub score: i32,
}

/// A registered ggml backend and what it was compiled with (`AVX2 = 1`, `LLAMAFILE = 1`, ...).
#[derive(Debug, Clone, Serialize)]
pub struct Backend {
    pub name: String,
    pub features: BTreeMap<String, String>,
    pub devices: Vec<String>,
}

/// The flags, as `/proc/cpuinfo` spells them, that decide which ggml kernels can run. AMX's are
/// listed so a report shows a CPU on which llama.cpp would pick its crashing AMX kernels.
const CPU_FLAGS: &[&str] = &[
    "sse4_2",
    "avx",
    "f16c",
    "fma",
    "bmi2",
    "avx2",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512vbmi",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
];

impl Cpu {
    pub fn detect() -> Cpu {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let flags: Vec<String> = field("flags").unwrap_or_default().split_whitespace().map(str::to_string).collect();
        Cpu {
            model: field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string()),
            physical_cores: num_cpus::get_physical(),
            logical_cpus: num_cpus::get(),
            features: CPU_FLAGS.iter().filter(|f| flags.iter().any(|g| g == *f)).map(|f| f.to_string()).collect(),
        }
    }

    pub fn has_amx(&self) -> bool {
        self.features.iter().any(|f| f.starts_with("amx"))
    }
}

impl SystemInfo {
    /// Starts llama.cpp's backends (a portable build loads its CPU kernels) without a model, and
    /// reports them: `quarry system`.
    pub fn probe() -> crate::Result<SystemInfo> {
        crate::backend::backend()?;
        Ok(SystemInfo::collect())
    }

    /// The backends as registered now: call it after the engine started (a portable build
    /// registers its CPU kernels when llama.cpp starts).
    pub fn collect() -> SystemInfo {
        let mut backends = Vec::new();
        let mut extra_buffer_types = Vec::new();
        // SAFETY: ggml's registry functions take and return plain pointers it owns for the life
        // of the process; names are NUL-terminated C strings.
        unsafe {
            for i in 0..llama_cpp_sys_2::ggml_backend_reg_count() {
                let reg = llama_cpp_sys_2::ggml_backend_reg_get(i);
                let name = text(llama_cpp_sys_2::ggml_backend_reg_name(reg));
                let mut features = BTreeMap::new();
                let get =
                    llama_cpp_sys_2::ggml_backend_reg_get_proc_address(reg, c"ggml_backend_get_features".as_ptr());
                if !get.is_null() {
                    let get: llama_cpp_sys_2::ggml_backend_get_features_t = std::mem::transmute(get);
                    if let Some(get) = get {
                        let mut f = get(reg);
                        while !f.is_null() && !(*f).name.is_null() {
                            features.insert(text((*f).name), text((*f).value));
                            f = f.add(1);
                        }
                    }
                }
                let mut devices = Vec::new();
                for d in 0..llama_cpp_sys_2::ggml_backend_reg_dev_count(reg) {
                    let dev = llama_cpp_sys_2::ggml_backend_reg_dev_get(reg, d);
                    devices.push(format!(
                        "{} ({})",
                        text(llama_cpp_sys_2::ggml_backend_dev_name(dev)),
                        text(llama_cpp_sys_2::ggml_backend_dev_description(dev))
                    ));
                    let bufts = llama_cpp_sys_2::ggml_backend_reg_get_proc_address(
                        reg,
                        c"ggml_backend_dev_get_extra_bufts".as_ptr(),
                    );
                    if !bufts.is_null() {
                        let bufts: llama_cpp_sys_2::ggml_backend_dev_get_extra_bufts_t = std::mem::transmute(bufts);
                        if let Some(bufts) = bufts {
                            let mut b = bufts(dev);
                            while !b.is_null() && !(*b).is_null() {
                                extra_buffer_types.push(text(llama_cpp_sys_2::ggml_backend_buft_name(*b)));
                                b = b.add(1);
                            }
                        }
                    }
                }
                backends.push(Backend { name, features, devices });
            }
        }
        // SAFETY: returns a pointer to a static buffer llama.cpp fills.
        let llama = unsafe { text(llama_cpp_sys_2::llama_print_system_info()) };
        SystemInfo {
            cpu: Cpu::detect(),
            build: if cfg!(feature = "portable") { "portable" } else { "native" },
            build_flags: env!("QUARRY_LLAMA_CXXFLAGS"),
            cpu_variant: loaded_variant().cloned(),
            backends,
            extra_buffer_types,
            llama: llama.trim().to_string(),
        }
    }

    /// Whether llama.cpp's AMX kernels are in this build and in use: the `AMX` buffer type is
    /// registered, or the CPU backend says it was compiled with AMX.
    pub fn uses_amx(&self) -> bool {
        self.extra_buffer_types.iter().any(|b| b.to_ascii_uppercase().contains("AMX"))
            || self.backends.iter().any(|b| b.features.keys().any(|k| k.starts_with("AMX")))
    }

    /// The one line `quarry serve` logs at start-up.
    pub fn line(&self) -> String {
        let cpu_backend = self.backends.iter().find(|b| b.name == "CPU");
        let compiled: Vec<String> = cpu_backend
            .map(|b| {
                b.features
                    .iter()
                    .filter(|(_, v)| v.as_str() != "0")
                    .map(|(k, v)| if v == "1" { k.clone() } else { format!("{k}={v}") })
                    .collect()
            })
            .unwrap_or_default();
        format!(
            "cpu: {} ({} cores; {}); llama.cpp {} build{}: CPU kernels {}; repacked weights: {}",
            self.cpu.model,
            self.cpu.physical_cores,
            self.cpu.features.join(" "),
            self.build,
            self.cpu_variant.as_ref().map(|v| format!(", variant {} (score {})", v.name, v.score)).unwrap_or_default(),
            if compiled.is_empty() { "none".to_string() } else { compiled.join(" ") },
            if self.extra_buffer_types.is_empty() { "none".to_string() } else { self.extra_buffer_types.join(", ") },
        )
    }
}

fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: callers pass NUL-terminated strings owned by ggml.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

static LOADED: std::sync::OnceLock<Option<CpuVariant>> = std::sync::OnceLock::new();

fn loaded_variant() -> Option<&'static CpuVariant> {
    LOADED.get().and_then(Option::as_ref)
}

/// The variants no build of Quarry may load: the one ggml builds with AMX.
pub const FORBIDDEN_VARIANTS: &[&str] = &["sapphirerapids"];

/// Where a portable build looks for its CPU kernels, in order: `QUARRY_BACKENDS_DIR`, beside
/// the executable, `../lib/quarry` from it (an installed layout), and the build's own output
/// folder (a `cargo build` tree).
pub fn variant_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("QUARRY_BACKENDS_DIR").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(PathBuf::from)) {
        dirs.push(exe_dir.join("../lib/quarry"));
        dirs.push(exe_dir.clone());
    }
    if let Some(d) = option_env!("GGML_BACKENDS_DIR") {
        dirs.push(PathBuf::from(d));
    }
    dirs
}

/// Loads the best CPU kernel variant this CPU runs (the highest `ggml_backend_score`), as ggml's
/// own `ggml_backend_load_best` does, but never a [`FORBIDDEN_VARIANTS`] one. Returns what it
/// loaded; `None` when no variant was found (the build is not portable, or its files are
/// missing — the caller says so).
pub fn load_cpu_variant() -> Option<&'static CpuVariant> {
    LOADED
        .get_or_init(|| {
            if !cfg!(feature = "portable") {
                return None;
            }
            let mut best: Option<CpuVariant> = None;
            for dir in variant_dirs() {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                paths.sort();
                for path in paths {
                    let Some(name) = variant_name(&path) else { continue };
                    if FORBIDDEN_VARIANTS.contains(&name.as_str()) {
                        continue;
                    }
                    let score = score(&path);
                    if score > best.as_ref().map_or(0, |b| b.score) {
                        best = Some(CpuVariant { name, path, score });
                    }
                }
                if best.is_some() {
                    break;
                }
            }
            let best = best?;
            if !register(&best.path) {
                return None;
            }
            // GPU backends of a portable build (`libggml-cuda.so`, ...) sit beside the CPU ones.
            if let Some(dir) = best.path.parent() {
                for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    let file = entry.file_name().to_string_lossy().into_owned();
                    let gpu = file.strip_prefix("libggml-").and_then(|f| f.strip_suffix(std::env::consts::DLL_SUFFIX));
                    if gpu.is_some_and(|g| !g.starts_with("cpu") && g != "base") {
                        register(&entry.path());
                    }
                }
            }
            Some(best)
        })
        .as_ref()
}

/// Registers the backend in `path` with ggml.
fn register(path: &std::path::Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: ggml dlopens the file and registers the backend it exports; the path is
    // NUL-terminated and outlives the call.
    !unsafe { llama_cpp_sys_2::ggml_backend_load(c.as_ptr()) }.is_null()
}

/// `haswell` for `libggml-cpu-haswell.so`.
fn variant_name(path: &std::path::Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = file.strip_prefix("libggml-cpu-")?.strip_suffix(std::env::consts::DLL_SUFFIX)?;
    Some(stem.to_string())
}

/// The variant's own `ggml_backend_score()`: 0 when this CPU lacks one of its instruction sets.
fn score(path: &std::path::Path) -> i32 {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else { return 0 };
    // SAFETY: dlopen/dlsym/dlclose on a file ggml built; the score function takes no arguments
    // and only reads cpuid. RTLD_LOCAL keeps its symbols out of the process until it is chosen.
    unsafe {
        let handle = libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if handle.is_null() {
            return 0;
        }
        let f = libc::dlsym(handle, c"ggml_backend_score".as_ptr());
        let s = if f.is_null() {
            0
        } else {
            let f: extern "C" fn() -> i32 = std::mem::transmute(f);
            f()
        };
        libc::dlclose(handle);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names_come_from_ggml_file_names() {
        assert_eq!(variant_name("/x/libggml-cpu-haswell.so".as_ref()).as_deref(), Some("haswell"));
        assert_eq!(variant_name("/x/libggml-base.so".as_ref()), None);
        assert_eq!(variant_name("/x/libggml-cpu-sapphirerapids.so".as_ref()).as_deref(), Some("sapphirerapids"));
    }

    #[test]
    fn a_cpu_with_amx_tiles_is_recognised() {
        let cpu = Cpu {
            model: "x".into(),
            physical_cores: 1,
            logical_cpus: 1,
            features: vec!["avx2".into(), "amx_tile".into()],
        };
        assert!(cpu.has_amx());
    }
}
