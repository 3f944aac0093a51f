//! `quarry-index`: the corpus — what a dropped folder contains, as text.
//!
//! Today this walks a folder (respecting `.gitignore`, skipping hidden and binary files) and
//! reads each text file, decoding UTF-8 or, failing that, UTF-16 with a byte-order mark or
//! Windows-1252, and ranks line-addressed passages with an in-memory BM25 ([`bm25`]) for the
//! `rag` baseline and the REPL's `search`. The tantivy index, the SQLite catalog, PDF/DOCX extraction and watching land
//! here behind the same [`Document`] shape.
//!
//! ```no_run
//! let folder = quarry_index::Folder::load("assets/demo".as_ref())?;
//! for doc in folder.documents() {
//!     println!("{} ({} lines)", doc.path, doc.text.lines().count());
//! }
//! # Ok::<(), quarry_index::Error>(())
//! ```

use std::path::{Path, PathBuf};

pub mod bm25;

pub use bm25::{passages, Bm25, Passage};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path} is not a folder")]
    NotAFolder { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no readable text files")]
    Empty { path: PathBuf },
}

/// Files larger than this are skipped with a note: they are data dumps, not documents, and would
/// crowd everything else out of a model's window.
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// One text file of the corpus.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Document {
    /// Relative to the folder, with `/` separators: what citations show.
    pub path: String,
    pub text: String,
}

/// A file the walk passed over, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// A folder read into memory.
#[derive(Debug, Clone)]
pub struct Folder {
    root: PathBuf,
    documents: Vec<Document>,
    skipped: Vec<Skipped>,
}

impl Folder {
    /// Reads every text file under `root`, sorted by path so runs are reproducible.
    pub fn load(root: &Path) -> Result<Folder> {
        let meta = std::fs::metadata(root).map_err(|source| Error::Io { path: root.into(), source })?;
        if !meta.is_dir() {
            return Err(Error::NotAFolder { path: root.into() });
        }
        let mut documents = Vec::new();
        let mut skipped = Vec::new();
        for entry in ignore::WalkBuilder::new(root)
            .hidden(true)
            .git_ignore(true)
            .require_git(false)
            .sort_by_file_name(|a, b| a.cmp(b))
            .build()
        {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    skipped.push(Skipped { path: String::new(), reason: e.to_string() });
                    continue;
                }
            };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let rel = relative(root, entry.path());
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if len > MAX_FILE_BYTES {
                skipped.push(Skipped { path: rel, reason: format!("larger than {} MiB", MAX_FILE_BYTES >> 20) });
                continue;
            }
            let bytes = match std::fs::read(entry.path()) {
                Ok(b) => b,
                Err(e) => {
                    skipped.push(Skipped { path: rel, reason: e.to_string() });
                    continue;
                }
            };
            match decode(&bytes) {
                Some(text) => documents.push(Document { path: rel, text }),
                None => skipped.push(Skipped { path: rel, reason: "binary (no text to read yet)".into() }),
            }
        }
        if documents.is_empty() {
            return Err(Error::Empty { path: root.into() });
        }
        Ok(Folder { root: root.into(), documents, skipped })
    }

    /// A folder made of given documents (pasted text, a child run's piece of context, tests).
    pub fn from_documents(root: impl Into<PathBuf>, documents: Vec<Document>) -> Folder {
        Folder { root: root.into(), documents, skipped: Vec::new() }
    }

    /// The document at `path` (relative, `/`-separated), if any.
    pub fn document(&self, path: &str) -> Option<&Document> {
        self.documents.iter().find(|d| d.path == path)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn documents(&self) -> &[Document] {
        &self.documents
    }

    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    pub fn total_chars(&self) -> usize {
        self.documents.iter().map(|d| d.text.chars().count()).sum()
    }
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Text from bytes, or `None` for binary data (a NUL byte in the first 8 KiB, as git decides).
fn decode(bytes: &[u8]) -> Option<String> {
    if let Some((enc, bom_len)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _) = enc.decode_without_bom_handling(&bytes[bom_len..]);
        return Some(text.into_owned());
    }
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return None;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Some(s.to_string()),
        Err(_) => Some(encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_skips_binary_hidden_and_ignored_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("sub")).unwrap();
        std::fs::write(p.join("b.txt"), "bee").unwrap();
        std::fs::write(p.join("sub/a.md"), "# A\nline").unwrap();
        std::fs::write(p.join("image.png"), [0x89, b'P', b'N', b'G', 0, 0, 1]).unwrap();
        std::fs::write(p.join(".secret"), "hidden").unwrap();
        std::fs::write(p.join(".gitignore"), "ignored.log\n").unwrap();
        std::fs::write(p.join("ignored.log"), "noise").unwrap();
        std::fs::write(p.join("latin1.txt"), [b'c', b'a', b'f', 0xE9]).unwrap();
        let f = Folder::load(p).unwrap();
        let paths: Vec<_> = f.documents().iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["b.txt", "latin1.txt", "sub/a.md"]);
        assert_eq!(f.documents()[1].text, "café");
        assert_eq!(f.skipped().len(), 1);
        assert_eq!(f.skipped()[0].path, "image.png");
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.txt");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(Folder::load(&file).unwrap_err().to_string(), format!("{} is not a folder", file.display()));
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(Folder::load(&empty).unwrap_err().to_string().ends_with("holds no readable text files"));
        assert!(Folder::load(Path::new("/no/such/dir")).unwrap_err().to_string().starts_with("/no/such/dir: "));
    }
}
