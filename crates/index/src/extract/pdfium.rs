//! Finding and loading libpdfium, the primary PDF engine (notes §2.5).
//!
//! The library is not linked: pdfium-render binds it at run time by symbol name, so Quarry
//! builds without it and reads PDFs with pdf_oxide (with a warning) where it is missing.
//! `scripts/install-deps.sh` takes it from the PyPI `pypdfium2` wheel (PDFium build 8149,
//! BSD-3/Apache-2.0, needs only libc, libm, libpthread and libgcc_s) into the cache below.
//!
//! Lookup order ([`candidates`]):
//! 1. `$QUARRY_PDFIUM`: the library file, or a folder holding it;
//! 2. next to the executable (`quarry`, `quarry-desktop`);
//! 3. `<executable folder>/../lib/quarry/` (an installed layout);
//! 4. the cache: `$XDG_CACHE_HOME/quarry/pdfium/`, else `~/.cache/quarry/pdfium/`.
//!
//! The host looks the library up ([`find`]) and the worker loads it ([`Engine::load`]) before
//! it confines itself, so Landlock need not allow the library's folder.

use std::path::{Path, PathBuf};

use pdfium_render::prelude::Pdfium;

pub const ENV: &str = "QUARRY_PDFIUM";

/// `libpdfium.so` (Linux), `libpdfium.dylib` (macOS), `pdfium.dll` (Windows).
pub fn library_name() -> &'static str {
    if cfg!(target_os = "windows") {
        "pdfium.dll"
    } else if cfg!(target_os = "macos") {
        "libpdfium.dylib"
    } else {
        "libpdfium.so"
    }
}

/// Where the library is looked for, in order (see the module docs).
pub fn candidates() -> Vec<PathBuf> {
    let name = library_name();
    let mut out = Vec::new();
    if let Some(v) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(v);
        out.push(if p.is_dir() { p.join(name) } else { p });
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        out.push(dir.join(name));
        out.push(dir.join("../lib/quarry").join(name));
    }
    out.push(cache_dir().join(name));
    out
}

/// The cache folder `scripts/install-deps.sh` fills.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("quarry").join("pdfium")
}

/// The first candidate that exists, or a sentence saying where it was looked for and the fix.
pub fn find() -> Result<PathBuf, String> {
    let c = candidates();
    if let Some(p) = c.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    Err(format!(
        "PDFium is not installed (looked for {} in {}); run scripts/install-deps.sh or set {ENV}",
        library_name(),
        c.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    ))
}

/// A loaded PDFium: one per worker process (PDFium is not thread-safe, pdfium-render #20).
pub struct Engine {
    pub(crate) pdfium: Pdfium,
    /// "pdfium 8149" (the build, from the `VERSION` file install-deps.sh writes beside the
    /// library), or "pdfium".
    pub name: String,
}

impl Engine {
    pub fn load(path: &Path) -> Result<Engine, String> {
        let bindings = Pdfium::bind_to_library(path)
            .map_err(|e| format!("PDFium at {} could not be loaded: {e}", path.display()))?;
        let version = path
            .parent()
            .and_then(|d| std::fs::read_to_string(d.join("VERSION")).ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty() && v.len() < 40);
        let name = match version {
            Some(v) => format!("pdfium {v}"),
            None => "pdfium".to_string(),
        };
        Ok(Engine { pdfium: Pdfium::new(bindings), name })
    }
}
