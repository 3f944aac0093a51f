//! OCR of scanned pages with the Tesseract command-line tool from the system packages (Debian
//! `tesseract-ocr` + `tesseract-ocr-eng`; notes §5: 0.7-3.1 s a page, word F1 0.98 against the
//! true text layer; the Rust OCR crates either download models at build or run time, or need
//! bindgen against libtesseract).
//!
//! **Who runs it.** The worker renders the page (it holds PDFium and the hostile file) and writes
//! a greyscale PGM into its scratch folder; the host checks that image and runs `tesseract` on
//! it, with a timeout and rlimits. Not the worker, because its seccomp filter forbids `execve`:
//! letting it start programs would let a parser exploit start any program it can read. The
//! image the host hands Tesseract is one it has validated itself (a P5 header whose size matches
//! the file exactly, bounded dimensions), so Tesseract only ever parses a trivial format, never
//! the hostile document.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The largest image rendered for OCR, in pixels: an A4 page at 300 dpi is 8.7 M; a poster-sized
/// page (ocrmypdf's enormous.pdf) is shrunk to this.
pub const MAX_PIXELS: u64 = 36_000_000;

/// The page's note when Tesseract is not installed (the wording).
pub const NOT_INSTALLED: &str = "no text layer (install tesseract-ocr to read scanned pages)";
pub const TURNED_OFF: &str = "no text layer (OCR is turned off)";

/// The Tesseract program: `$QUARRY_TESSERACT`, else `tesseract` on the PATH.
pub fn default_program() -> PathBuf {
    std::env::var_os("QUARRY_TESSERACT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| "tesseract".into())
}

/// The version of the Tesseract at `program` ("tesseract 5.3.0"), looked up once per program;
/// `None` when it is not installed.
pub fn tesseract(program: &Path) -> Option<String> {
    static VERSIONS: OnceLock<Mutex<HashMap<PathBuf, Option<String>>>> = OnceLock::new();
    let cache = VERSIONS.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(program) {
        return v.clone();
    }
    let version = (|| {
        let out = Command::new(program).arg("--version").stdin(Stdio::null()).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        Some(text.lines().find(|l| l.starts_with("tesseract"))?.trim().to_string())
    })();
    cache.lock().unwrap_or_else(|p| p.into_inner()).insert(program.to_path_buf(), version.clone());
    version
}

/// Writes a binary greyscale PGM (what the worker does with a rendered page).
pub fn write_pgm(path: &Path, width: u32, height: u32, gray: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    write!(f, "P5\n{width} {height}\n255\n")?;
    f.write_all(gray)?;
    f.sync_all()
}

/// Checks that `path` is exactly a P5 PGM of sane size (see the module docs).
pub fn check_pgm(path: &Path) -> Result<(u32, u32), String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("the rendered page is missing ({e})"))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut head = [0u8; 64];
    let n = f.read(&mut head).map_err(|e| e.to_string())?;
    let head = &head[..n];
    let mut fields = head.split(|&b| b == b'\n');
    let (magic, dims, max) = (fields.next(), fields.next(), fields.next());
    let bad = || "the rendered page is not a valid image".to_string();
    if magic != Some(b"P5") || max != Some(b"255") {
        return Err(bad());
    }
    let dims = std::str::from_utf8(dims.ok_or_else(bad)?).map_err(|_| bad())?;
    let (w, h) = dims.split_once(' ').ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    let header = format!("P5\n{w} {h}\n255\n").len() as u64;
    if w == 0 || h == 0 || u64::from(w) * u64::from(h) > MAX_PIXELS * 2 || len != header + u64::from(w) * u64::from(h) {
        return Err(bad());
    }
    Ok((w, h))
}

/// Runs Tesseract on a checked image, with a wall-clock limit and rlimits; returns the text.
pub fn run(program: &Path, image: &Path, timeout: Duration) -> Result<String, String> {
    check_pgm(image)?;
    let mut cmd = Command::new(program);
    cmd.arg(image)
        .arg("-")
        .args(["-l", "eng", "--psm", "3"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // One thread: OpenMP workers spinning on a loaded 2-core machine slow everything
        // (the same lesson as llama.cpp's passive wait, README).
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(prefix) = std::env::var_os("TESSDATA_PREFIX") {
        cmd.env("TESSDATA_PREFIX", prefix);
    }
    #[cfg(unix)]
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            // Async-signal-safe calls only between fork and exec.
            let lim = libc::rlimit { rlim_cur: 2 << 30, rlim_max: 2 << 30 };
            libc::setrlimit(libc::RLIMIT_AS, &lim);
            let cpu = libc::rlimit { rlim_cur: 300, rlim_max: 300 };
            libc::setrlimit(libc::RLIMIT_CPU, &cpu);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("tesseract could not be started: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.by_ref().take(64 << 20).read_to_end(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.by_ref().take(1 << 20).read_to_end(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("OCR took longer than {} s on this page", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("tesseract: {e}")),
        }
    };
    let out = out_thread.join().unwrap_or_default();
    let err = err_thread.join().unwrap_or_default();
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        return Err(format!(
            "tesseract failed on this page ({status}{})",
            if last.is_empty() { String::new() } else { format!(": {last}") }
        ));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgm_round_trip_and_rejects() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pgm");
        write_pgm(&p, 3, 2, &[0, 1, 2, 3, 4, 5]).unwrap();
        assert_eq!(check_pgm(&p).unwrap(), (3, 2));
        std::fs::write(&p, b"P5\n3 2\n255\n\0\0").unwrap();
        assert!(check_pgm(&p).is_err(), "short body");
        std::fs::write(&p, b"%PDF-1.4 not an image").unwrap();
        assert!(check_pgm(&p).is_err());
    }
}
