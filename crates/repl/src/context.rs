//! Contexts travel to the worker as files it maps, never as JSON strings: 100 MB of text would
//! otherwise be escaped, piped and parsed on every load.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::protocol::ContextFile;
use crate::Result;

/// What `context` is bound to in Python.
#[derive(Debug, Clone)]
pub enum Context {
    /// One text: `context` is a `str`.
    Text(String),
    /// The documents of a folder: `context` is a sequence of documents with `.path`, `.text`
    /// (decoded on first use) and `.lines()`.
    Documents(Vec<ContextDocument>),
}

#[derive(Debug, Clone, Default)]
pub struct ContextDocument {
    /// As citations show it: relative to the folder, `/`-separated.
    pub path: String,
    pub text: String,
    /// Where each page of a paged document (PDF, Office, EPUB, mail) starts; empty for text.
    /// Python's `Document.pages` and each `Chunk.page` come from it.
    pub pages: Vec<PageMark>,
}

/// One page of a [`ContextDocument`]: its physical number, its label ("iv", a sheet's name) and
/// its first line (1-based) in the document's text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PageMark {
    pub number: u32,
    pub label: String,
    pub first_line: usize,
}

impl Context {
    /// Writes the context under `dir` with file names ending in `seq` (a new name per load, so
    /// a file the worker still maps is never rewritten under it).
    pub(crate) fn write(&self, dir: &Path, seq: u64) -> Result<ContextFile> {
        match self {
            Context::Text(text) => {
                let path = dir.join(format!("context-{seq}.txt"));
                std::fs::write(&path, text.as_bytes())?;
                Ok(ContextFile::Text { path })
            }
            Context::Documents(docs) => {
                let data = dir.join(format!("documents-{seq}.bin"));
                let index = dir.join(format!("documents-{seq}.json"));
                let mut out = BufWriter::with_capacity(1 << 20, File::create(&data)?);
                let mut entries = Vec::with_capacity(docs.len());
                let mut offset = 0u64;
                for doc in docs {
                    out.write_all(doc.text.as_bytes())?;
                    let end = offset + doc.text.len() as u64;
                    let pages: Vec<(u32, &str, usize)> =
                        doc.pages.iter().map(|p| (p.number, p.label.as_str(), p.first_line)).collect();
                    entries.push((doc.path.as_str(), offset, end, pages));
                    offset = end;
                }
                out.flush()?;
                std::fs::write(&index, serde_json::to_vec(&entries).expect("index serializes"))?;
                Ok(ContextFile::Documents { data, index })
            }
        }
    }
}

/// Removes the files of a context that has been replaced.
pub(crate) fn remove(file: &ContextFile) {
    match file {
        ContextFile::Text { path } => {
            let _ = std::fs::remove_file(path);
        }
        ContextFile::Documents { data, index } => {
            let _ = std::fs::remove_file(data);
            let _ = std::fs::remove_file(index);
        }
    }
}
