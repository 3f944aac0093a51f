//! Collections: a dropped folder, indexed once and kept up to date, so a question starts at once
//! instead of re-reading every file (issue 15).
//!
//! A [`Library`] is Quarry's data directory (`$QUARRY_DATA_DIR`, else the user's data dir +
//! `quarry`): one SQLite [`catalog`] of every collection and file, and per collection one tantivy
//! index of the files' text in [`chunks`] (`collections/<id>/index`). [`update`] brings a
//! collection up to date with its folder, in batches that survive `kill -9` at any moment: the
//! catalog never says a file is indexed before tantivy committed it. [`Library::check`] verifies
//! exactly that, and [`torture`] kills real indexing processes to prove it. [`watch`] runs the
//! update whenever a folder changes.
//!
//! ```no_run
//! use quarry_index::{Library, UpdateOptions};
//! let mut library = Library::open_default()?;
//! let docs = library.add("contracts".as_ref(), None)?;
//! let report = library.update(&docs, &UpdateOptions::default(), &|_| {}, None)?;
//! println!("{} files indexed, {} failed", report.indexed, report.failed);
//! let status = library.status(&docs)?;
//! println!("{} files, {} pages", status.files, status.pages);
//! # Ok::<(), quarry_index::Error>(())
//! ```

pub mod catalog;
pub mod chunks;
pub mod grep;
pub mod torture;
pub mod update;
pub mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use catalog::{Catalog, CollectionRow, FileRow, Status};
pub use chunks::Chunks;
pub use grep::{FixedPattern, GrepHit, GrepOptions, GrepPath, GrepReport, FIXED_PATTERNS};
pub use update::{UpdateEvent, UpdateOptions, UpdateReport};
pub use watch::{WatchEvent, WatchOptions};

use crate::{Document, Error, Folder, Layout, Result, Skipped};

/// The environment variable naming Quarry's data directory.
pub const DATA_DIR_ENV: &str = "QUARRY_DATA_DIR";

/// Quarry's data directory: `$QUARRY_DATA_DIR`, else the user's data dir + `quarry`
/// (`~/.local/share/quarry` on Linux).
pub fn data_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    dirs::data_dir().map(|d| d.join("quarry")).ok_or_else(|| Error::Catalog {
        path: PathBuf::from("~/.local/share/quarry"),
        message: format!("this system names no data directory; set {DATA_DIR_ENV} to a folder Quarry may write"),
    })
}

/// Files, pages and bytes of one format in a collection.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FormatCount {
    pub format: String,
    pub files: u64,
    pub pages: u64,
    pub bytes: u64,
}

/// Files that gave no text for the same reason.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReasonGroup {
    pub reason: String,
    pub files: Vec<String>,
}

/// What a collection holds: `quarry index status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CollectionStatus {
    pub name: String,
    pub root: PathBuf,
    /// Every file the last walk found, indexed or not.
    pub files: u64,
    pub indexed: u64,
    pub failed: u64,
    /// Found, not read yet: an update was interrupted, or is running.
    pub pending: u64,
    pub pages: u64,
    /// Bytes of the indexed files on disk, and of their text.
    pub bytes: u64,
    pub text_bytes: u64,
    pub chunks: u64,
    /// Most files first.
    pub formats: Vec<FormatCount>,
    /// Largest group first.
    pub errors: Vec<ReasonGroup>,
    pub batches: u64,
    pub generation: u64,
    pub updated_at: Option<i64>,
    /// Bytes of the index on disk.
    pub index_bytes: u64,
}

/// One file as the index holds it, for comparing two builds ([`Library::snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSnapshot {
    pub path: String,
    pub status: String,
    pub format: Option<String>,
    pub pages: u64,
    pub reason: Option<String>,
    /// The chunks' text, concatenated in order.
    pub text: String,
}

/// Quarry's data directory: the catalog and the collections' indexes.
pub struct Library {
    dir: PathBuf,
    catalog: Catalog,
    /// Indexes opened for reading, kept between greps: opening one maps every segment's files
    /// again and faults their pages in, about a fifth of a selective grep's time.
    open: std::sync::Mutex<std::collections::HashMap<i64, std::sync::Arc<OpenIndex>>>,
}

/// A collection's index and a reader of it, reloaded before each use.
pub struct OpenIndex {
    pub chunks: Chunks,
    pub reader: tantivy::IndexReader,
}

impl Library {
    /// The library in [`data_dir`].
    pub fn open_default() -> Result<Library> {
        Library::open(&data_dir()?)
    }

    pub fn open(dir: &Path) -> Result<Library> {
        let catalog = Catalog::open(&dir.join("catalog.sqlite"))?;
        Ok(Library { dir: dir.into(), catalog, open: Default::default() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Where collection `id`'s tantivy index lives.
    pub fn index_dir(&self, id: i64) -> PathBuf {
        self.dir.join("collections").join(id.to_string()).join("index")
    }

    /// A collection's index, for reading: [`Error::Outdated`] names the collection to update.
    pub fn chunks(&self, collection: &CollectionRow) -> Result<Chunks> {
        Chunks::open(&self.index_dir(collection.id)).map_err(|e| match e {
            Error::Outdated { path, found, wanted, .. } => {
                Error::Outdated { path, found, wanted, collection: collection.name.clone() }
            }
            e => e,
        })
    }

    /// A collection's index and reader, opened once and reloaded to its last commit on every
    /// call; reopened when reloading fails (the index was rebuilt or removed).
    pub fn open_index(&self, collection: &CollectionRow) -> Result<std::sync::Arc<OpenIndex>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = open.get(&collection.id) {
            if o.reader.reload().is_ok() {
                return Ok(o.clone());
            }
            open.remove(&collection.id);
        }
        let chunks = self.chunks(collection)?;
        let reader = chunks.reader()?;
        let o = std::sync::Arc::new(OpenIndex { chunks, reader });
        open.insert(collection.id, o.clone());
        Ok(o)
    }

    pub fn collections(&self) -> Result<Vec<CollectionRow>> {
        self.catalog.collections()
    }

    /// The collection named `name`; the error lists the names there are.
    pub fn get(&self, name: &str) -> Result<CollectionRow> {
        match self.catalog.collection(name)? {
            Some(c) => Ok(c),
            None => Err(Error::NoCollection {
                name: name.into(),
                known: self.catalog.collections()?.into_iter().map(|c| c.name).collect(),
            }),
        }
    }

    /// The collection of folder `root`, if there is one.
    pub fn find_root(&self, root: &Path) -> Result<Option<CollectionRow>> {
        let root = std::fs::canonicalize(root).map_err(|source| Error::Io { path: root.into(), source })?;
        self.catalog.collection_at(&root)
    }

    /// Adds folder `root` as a collection named `name` (by default the folder's name, with a
    /// number when taken). A folder already added is returned as it is, so `add` after an
    /// interrupted `add` resumes it. Nothing is read yet: see [`Library::update`].
    pub fn add(&mut self, root: &Path, name: Option<&str>) -> Result<CollectionRow> {
        let meta = std::fs::metadata(root).map_err(|source| Error::Io { path: root.into(), source })?;
        if !meta.is_dir() {
            return Err(Error::NotAFolder { path: root.into() });
        }
        let root = std::fs::canonicalize(root).map_err(|source| Error::Io { path: root.into(), source })?;
        if let Some(existing) = self.catalog.collection_at(&root)? {
            return match name {
                Some(n) if n != existing.name => {
                    Err(Error::NameTaken { name: existing.name.clone(), root: existing.root.clone() })
                }
                _ => Ok(existing),
            };
        }
        let name = match name {
            Some(n) => {
                if let Some(other) = self.catalog.collection(n)? {
                    return Err(Error::NameTaken { name: n.into(), root: other.root });
                }
                n.to_string()
            }
            None => {
                let base = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "root".into());
                let mut candidate = base.clone();
                let mut i = 2;
                while self.catalog.collection(&candidate)?.is_some() {
                    candidate = format!("{base}-{i}");
                    i += 1;
                }
                candidate
            }
        };
        let row = self.catalog.insert_collection(&name, &root)?;
        // Ids are never reused, but a folder left by a removal killed half-way must not leak
        // its chunks into a new collection.
        let dir = self.index_dir(row.id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
        }
        Ok(row)
    }

    /// Removes a collection: its rows, then its index.
    pub fn remove(&mut self, name: &str) -> Result<CollectionRow> {
        let row = self.get(name)?;
        self.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&row.id);
        let dir = self.index_dir(row.id);
        // Taking the writer first refuses to remove a collection another process is updating.
        if dir.join("meta.json").exists() {
            let _writer = Chunks::lock_any(&dir)?;
        }
        self.catalog.remove_collection(row.id)?;
        let parent = dir.parent().unwrap_or(&dir).to_path_buf();
        if parent.exists() {
            std::fs::remove_dir_all(&parent).map_err(|source| Error::Io { path: parent.clone(), source })?;
        }
        Ok(row)
    }

    /// Brings `collection` up to date with its folder ([`update`]).
    pub fn update(
        &mut self,
        collection: &CollectionRow,
        options: &UpdateOptions,
        progress: &(dyn Fn(&UpdateEvent) + Sync),
        cancel: Option<&crate::CancelToken>,
    ) -> Result<UpdateReport> {
        let (chunks, _rebuilt) = Chunks::open_for_update(&self.index_dir(collection.id))?;
        update::update(&mut self.catalog, &chunks, collection, options, progress, cancel)
    }

    /// Counts, formats and errors of a collection, from the catalog.
    pub fn status(&self, collection: &CollectionRow) -> Result<CollectionStatus> {
        let files = self.catalog.files(collection.id)?;
        let (batches, _) = self.catalog.batch_history(collection.id)?;
        let mut s = CollectionStatus {
            name: collection.name.clone(),
            root: collection.root.clone(),
            files: files.len() as u64,
            indexed: 0,
            failed: 0,
            pending: 0,
            pages: 0,
            bytes: 0,
            text_bytes: 0,
            chunks: 0,
            formats: Vec::new(),
            errors: Vec::new(),
            batches,
            generation: collection.generation,
            updated_at: collection.updated_at,
            index_bytes: dir_bytes(&self.index_dir(collection.id)),
        };
        let mut formats: BTreeMap<String, FormatCount> = BTreeMap::new();
        let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in &files {
            match f.status {
                Status::Indexed => {
                    s.indexed += 1;
                    s.pages += f.pages;
                    s.bytes += f.size.unwrap_or(0);
                    s.text_bytes += f.text_bytes;
                    s.chunks += f.chunks;
                    let format = f.format.clone().unwrap_or_else(|| "text".into());
                    let e =
                        formats.entry(format.clone()).or_insert_with(|| FormatCount { format, ..Default::default() });
                    e.files += 1;
                    e.pages += f.pages;
                    e.bytes += f.size.unwrap_or(0);
                }
                Status::Failed => {
                    s.failed += 1;
                    errors.entry(f.reason.clone().unwrap_or_default()).or_default().push(f.path.clone());
                }
                Status::Pending => s.pending += 1,
            }
        }
        s.formats = formats.into_values().collect();
        s.formats.sort_by(|a, b| b.files.cmp(&a.files).then(a.format.cmp(&b.format)));
        s.errors = errors.into_iter().map(|(reason, files)| ReasonGroup { reason, files }).collect();
        s.errors.sort_by(|a, b| b.files.len().cmp(&a.files.len()).then(a.reason.cmp(&b.reason)));
        Ok(s)
    }

    /// Recovers a collection from an interrupted update (taking its writer, so it fails with
    /// [`Error::Locked`] while an update runs) and checks that the catalog and the index agree:
    /// every indexed file's chunks are in the index exactly once, of its generation, and
    /// concatenate to the text the catalog hashed; failed files have none; no chunk belongs to
    /// no file; no batch is left open. Returns the disagreements, one sentence each.
    pub fn check(&mut self, collection: &CollectionRow) -> Result<Vec<String>> {
        let chunks = self.chunks(collection)?;
        {
            let _writer = chunks.writer()?;
            update::recover(&mut self.catalog, &chunks, collection.id)?;
        }
        let mut problems = Vec::new();
        let open = self.catalog.open_batches(collection.id)?;
        if !open.is_empty() {
            problems.push(format!("batches {open:?} are still open after recovery"));
        }
        let reader = chunks.reader()?;
        let searcher = reader.searcher();
        let mut expected = 0u64;
        for f in self.catalog.files(collection.id)? {
            let found = chunks.file_chunks(&searcher, f.id as u64)?;
            match f.status {
                Status::Indexed => {
                    expected += f.chunks;
                    if found.len() as u64 != f.chunks {
                        problems.push(format!(
                            "{}: the catalog says {} chunks, the index holds {}",
                            f.path,
                            f.chunks,
                            found.len()
                        ));
                    }
                    if let Some(c) = found.iter().find(|c| c.generation != f.generation) {
                        problems.push(format!(
                            "{}: chunk {} is of generation {}, the catalog's row of {}",
                            f.path, c.chunk, c.generation, f.generation
                        ));
                    }
                    if found.iter().enumerate().any(|(i, c)| c.chunk as usize != i) {
                        problems.push(format!(
                            "{}: its chunks are not numbered 0..{} exactly once",
                            f.path,
                            found.len()
                        ));
                    }
                    let text: String = found.iter().map(|c| c.text.as_str()).collect();
                    if f.text_hash.as_deref() != Some(hex::encode(Sha256::digest(text.as_bytes())).as_str()) {
                        problems.push(format!("{}: the index's text differs from the text that was read", f.path));
                    }
                }
                Status::Failed if !found.is_empty() => {
                    problems.push(format!("{}: failed ({:?}) yet holds {} chunks", f.path, f.reason, found.len()));
                }
                Status::Failed => {}
                // A pending file may still hold the chunks of an older read.
                Status::Pending => expected += found.len() as u64,
            }
        }
        let total = searcher.num_docs();
        if total != expected {
            problems.push(format!("the index holds {total} chunks, the catalog's files {expected}"));
        }
        Ok(problems)
    }

    /// Every file of a collection as the index holds it, sorted by path.
    pub fn snapshot(&self, collection: &CollectionRow) -> Result<Vec<FileSnapshot>> {
        let chunks = self.chunks(collection)?;
        let reader = chunks.reader()?;
        let searcher = reader.searcher();
        let mut out = Vec::new();
        for f in self.catalog.files(collection.id)? {
            let text = chunks.file_chunks(&searcher, f.id as u64)?.into_iter().map(|c| c.text).collect();
            out.push(FileSnapshot {
                path: f.path,
                status: format!("{:?}", f.status).to_lowercase(),
                format: f.format,
                pages: f.pages,
                reason: f.reason,
                text,
            });
        }
        Ok(out)
    }

    /// The collection's documents as a [`Folder`], from the index's stored text and the
    /// catalog's layouts: what `quarry ask --collection` answers from, without reading a file.
    pub fn folder(&self, collection: &CollectionRow) -> Result<Folder> {
        let chunks = self.chunks(collection)?;
        let reader = chunks.reader()?;
        let searcher = reader.searcher();
        let mut documents = Vec::new();
        let mut layouts = Vec::new();
        let mut skipped = Vec::new();
        let mut files = self.catalog.files(collection.id)?;
        // The walk's order (names sorted within each folder), as Folder::load gives them: the
        // same prompts, whichever way the documents were read.
        files.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
        for f in files {
            match f.status {
                Status::Indexed => {
                    let text: String =
                        chunks.file_chunks(&searcher, f.id as u64)?.into_iter().map(|c| c.text).collect();
                    let layout = f.parsed_layout().unwrap_or_else(|| Layout::text(text.lines().count()));
                    documents.push(Document { path: f.path, text });
                    layouts.push(layout);
                }
                Status::Failed => skipped.push(Skipped { path: f.path, reason: f.reason.unwrap_or_default() }),
                Status::Pending => {
                    skipped.push(Skipped { path: f.path, reason: "not indexed yet (run quarry index update)".into() })
                }
            }
        }
        if documents.is_empty() {
            return Err(Error::Empty { path: collection.root.clone() });
        }
        let index = crate::CollectionCorpus::new(Library::open(&self.dir)?, collection.clone());
        Ok(Folder::from_index(collection.root.clone(), documents, layouts, skipped, std::sync::Arc::new(index)))
    }
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
