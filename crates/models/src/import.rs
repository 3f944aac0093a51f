//! Bringing a GGUF file the user already has into Quarry (`quarry models import PATH`), and
//! checking any file against the catalog (`quarry models verify PATH`). The file stays where the
//! user keeps it; only its registration (path, size, sha256) is written.

use std::path::{Path, PathBuf};

use crate::catalog::{register_local, ModelEntry, Role};
use crate::fetch::{sha256_file, CancelToken, Progress};
use crate::gguf::{self, GgufInfo};
use crate::store::ModelStore;
use crate::{Error, Result};

/// What `verify` found out about a file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verification {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub gguf_version: u32,
    pub architecture: Option<String>,
    /// The catalog model whose size and sha256 this file has, if any.
    pub matches: Option<String>,
    /// A catalog model with this file's name but other bytes: a corrupt or different file.
    pub conflicts_with: Option<String>,
}

/// Checks the header, hashes the file and compares it with every catalog model.
pub fn verify_file(
    store: &ModelStore,
    path: &Path,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<Verification> {
    let info = gguf::inspect(path)?;
    progress.begin(&format!("hashing {}", path.display()), Some(info.file_len));
    let sha256 = sha256_file(path, progress, cancel)?;
    progress.end();
    let catalog = store.catalog()?;
    let matches = catalog
        .models()
        .iter()
        .find(|m| m.sha256.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(&sha256)))
        .map(|m| m.id.clone());
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase());
    let conflicts_with = match &matches {
        Some(_) => None,
        None => catalog
            .models()
            .iter()
            .find(|m| Some(m.file.to_lowercase()) == name && m.sha256.is_some())
            .map(|m| m.id.clone()),
    };
    Ok(Verification {
        path: path.into(),
        size: info.file_len,
        sha256,
        gguf_version: info.version,
        architecture: info.architecture().map(str::to_string),
        matches,
        conflicts_with,
    })
}

/// Registers a local GGUF file. A file identical to a catalog model completes that model (no
/// download needed); any other file becomes a new model whose id derives from its name.
pub fn import_file(
    store: &ModelStore,
    path: &Path,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<ModelEntry> {
    let path = path.canonicalize().map_err(Error::io(path))?;
    let v = verify_file(store, &path, progress, cancel)?;
    let catalog = store.catalog()?;
    let entry = match &v.matches {
        Some(id) => {
            let mut known = catalog.get(id)?.clone();
            known.path = Some(path.clone());
            known
        }
        None => {
            let info = gguf::inspect(&path)?;
            let id = id_from(&path);
            if let Ok(existing) = catalog.get(&id) {
                if existing.path.as_deref() != Some(path.as_path()) {
                    return Err(Error::Catalog {
                        path: store.dir().join(crate::catalog::LOCAL_FILE),
                        message: format!(
                            "a different model already has the id '{id}'; rename {} before importing it",
                            path.display()
                        ),
                    });
                }
            }
            new_entry(id, &path, &info, &v)
        }
    };
    register_local(store.dir(), entry.clone())?;
    Ok(entry)
}

fn new_entry(id: String, path: &Path, info: &GgufInfo, v: &Verification) -> ModelEntry {
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    ModelEntry {
        name: info.get_str("general.name").map(str::to_string).unwrap_or_else(|| id.clone()),
        family: info.architecture().unwrap_or_default().to_string(),
        params: info.get_str("general.size_label").unwrap_or_default().to_string(),
        quantization: quantization_from(&file),
        id,
        file,
        size: Some(v.size),
        sha256: Some(v.sha256.clone()),
        license: info.get_str("general.license").unwrap_or_default().to_string(),
        role: Role::Root,
        default_for: vec![],
        sources: vec![],
        path: Some(path.into()),
    }
}

/// `Llama-3.2-3B-Instruct-Q4_K_M.gguf` → `llama-3.2-3b-instruct-q4_k_m`.
fn id_from(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_lowercase()).unwrap_or_default();
    let id: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' }).collect();
    if id.is_empty() {
        "imported-model".into()
    } else {
        id
    }
}

fn quantization_from(file: &str) -> String {
    let upper = file.to_uppercase();
    ["Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S", "Q6_K", "Q8_0", "Q4_0", "Q3_K_M", "Q2_K", "IQ4_XS", "F16", "BF16", "F32"]
        .into_iter()
        .find(|q| upper.contains(q))
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::NoProgress;
    use crate::gguf::testing::tiny_gguf;

    #[test]
    fn import_registers_a_new_model_and_keeps_the_file_in_place() {
        let models = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let file = elsewhere.path().join("My-Tiny Model-Q8_0.gguf");
        std::fs::write(&file, tiny_gguf(&[("general.architecture", "llama"), ("general.name", "Tiny")], 16, true))
            .unwrap();
        let store = ModelStore::new(models.path());
        let entry = import_file(&store, &file, &NoProgress, &CancelToken::default()).unwrap();
        assert_eq!(entry.id, "my-tiny-model-q8_0");
        assert_eq!(entry.quantization, "Q8_0");
        assert_eq!(entry.name, "Tiny");
        let catalog = store.catalog().unwrap();
        let listed = catalog.get("my-tiny-model-q8_0").unwrap();
        assert_eq!(store.file_path(listed), file.canonicalize().unwrap());
        assert!(file.exists(), "importing never moves or deletes the user's file");
        assert!(matches!(store.status(listed), crate::Status::Installed { .. }));
    }

    #[test]
    fn import_refuses_a_file_that_is_not_gguf_and_registers_nothing() {
        let models = tempfile::tempdir().unwrap();
        let file = models.path().join("notes.gguf");
        std::fs::write(&file, b"these are my notes, not a model").unwrap();
        let store = ModelStore::new(models.path());
        let err = import_file(&store, &file, &NoProgress, &CancelToken::default()).unwrap_err().to_string();
        assert!(err.contains("notes.gguf is not a usable GGUF model file"), "{err}");
        assert!(!models.path().join(crate::catalog::LOCAL_FILE).exists());
    }

    #[test]
    fn verify_flags_a_file_named_like_a_catalog_model_with_other_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
        std::fs::write(&file, tiny_gguf(&[], 16, true)).unwrap();
        let store = ModelStore::new(dir.path());
        let v = verify_file(&store, &file, &NoProgress, &CancelToken::default()).unwrap();
        assert_eq!(v.matches, None);
        assert_eq!(v.conflicts_with.as_deref(), Some("qwen2.5-coder-0.5b-instruct-q4_k_m"));
    }
}
