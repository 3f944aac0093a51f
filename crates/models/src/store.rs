//! Where model files live on this machine, and which ones are there.

use std::path::{Path, PathBuf};

use crate::catalog::{Catalog, ModelEntry};
use crate::{Error, Result};

/// The environment variable that moves the models directory (CI points it at ~/.cache).
pub const MODELS_DIR_ENV: &str = "QUARRY_MODELS_DIR";

/// The models directory: weights, `local.toml`, and `.downloads/` for resumable partial files.
#[derive(Debug, Clone)]
pub struct ModelStore {
    dir: PathBuf,
}

/// Whether a model's file is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Installed {
        path: PathBuf,
    },
    /// A file is there but has the wrong size (an interrupted copy, or a different file).
    Damaged {
        path: PathBuf,
        len: u64,
    },
    Missing,
}

impl ModelStore {
    pub fn new(dir: impl Into<PathBuf>) -> ModelStore {
        ModelStore { dir: dir.into() }
    }

    /// `$QUARRY_MODELS_DIR`, else `<user data dir>/quarry/models` (~/.local/share on Linux).
    pub fn from_env() -> ModelStore {
        match std::env::var_os(MODELS_DIR_ENV).filter(|v| !v.is_empty()) {
            Some(dir) => ModelStore::new(dir),
            None => {
                let base = dirs::data_dir().unwrap_or_else(|| PathBuf::from(".local/share"));
                ModelStore::new(base.join("quarry").join("models"))
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn catalog(&self) -> Result<Catalog> {
        Catalog::load(&self.dir)
    }

    /// Where the model's file is (or will be once fetched).
    pub fn file_path(&self, entry: &ModelEntry) -> PathBuf {
        entry.path.clone().unwrap_or_else(|| self.dir.join(&entry.file))
    }

    /// Resumable partial downloads of `entry` live here.
    pub fn downloads_dir(&self, entry: &ModelEntry) -> PathBuf {
        self.dir.join(".downloads").join(&entry.id)
    }

    pub fn status(&self, entry: &ModelEntry) -> Status {
        let path = self.file_path(entry);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => match entry.size {
                Some(size) if size != meta.len() => Status::Damaged { path, len: meta.len() },
                _ => Status::Installed { path },
            },
            _ => Status::Missing,
        }
    }

    /// Turns what a user typed — a catalog id or a path to a GGUF file — into a file on disk.
    pub fn resolve(&self, id_or_path: &str) -> Result<PathBuf> {
        let as_path = Path::new(id_or_path);
        let catalog = self.catalog()?;
        match catalog.get(id_or_path) {
            Ok(entry) => match self.status(entry) {
                Status::Installed { path } => Ok(path),
                Status::Damaged { path, len } => Err(Error::BadGguf {
                    path,
                    reason: format!(
                        "it is {len} bytes, not {}; run `quarry models fetch {}` to repair it",
                        entry.size.unwrap_or_default(),
                        entry.id
                    ),
                }),
                Status::Missing => Err(Error::NotInstalled { id: entry.id.clone() }),
            },
            Err(_) if as_path.is_file() => Ok(as_path.to_path_buf()),
            Err(_) if id_or_path.ends_with(".gguf") || id_or_path.contains('/') => Err(Error::Io {
                path: as_path.into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such model file"),
            }),
            Err(e) => Err(e),
        }
    }
}

/// Free bytes on the file system holding `dir` (the nearest existing ancestor), if knowable.
pub fn free_space(dir: &Path) -> Option<u64> {
    let mut probe = dir;
    while !probe.exists() {
        probe = probe.parent()?;
    }
    free_space_at(probe)
}

#[cfg(unix)]
fn free_space_at(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(not(unix))]
fn free_space_at(_: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_resolve_follow_the_file_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        let catalog = store.catalog().unwrap();
        let entry = catalog.get("qwen2.5-coder-0.5b-instruct-q4_k_m").unwrap();
        assert_eq!(store.status(entry), Status::Missing);
        let err = store.resolve(&entry.id).unwrap_err().to_string();
        assert!(err.contains("quarry models fetch qwen2.5-coder-0.5b-instruct-q4_k_m"), "{err}");
        std::fs::write(store.file_path(entry), b"short").unwrap();
        assert!(matches!(store.status(entry), Status::Damaged { len: 5, .. }));
        assert!(store.resolve(&entry.id).unwrap_err().to_string().contains("is 5 bytes, not 491400064"));
        assert!(store.resolve("/no/such/model.gguf").unwrap_err().to_string().contains("/no/such/model.gguf"));
        assert!(store.resolve("nonsense").unwrap_err().to_string().contains("unknown model 'nonsense'"));
        assert!(free_space(&dir.path().join("not/yet/made")).unwrap() > 0);
    }
}
