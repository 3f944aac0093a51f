//! `quarry-index`: the corpus — what a dropped folder contains, as text, page by page.
//!
//! [`Folder::load`] walks a folder (respecting `.gitignore`, skipping hidden files) and reads
//! every file through [`extract`]: PDF (with its pages and labels), Word, PowerPoint, Excel,
//! OpenDocument, CSV, HTML, EPUB, email, RTF and text in any encoding, each in a confined worker
//! process (`quarry worker extract`) so a hostile file costs that file, never the app. A
//! [`Document`] is the text (the pages' text concatenated, so line-based code keeps working);
//! its [`Layout`] says which lines are which page, for citations like
//! `contracts/msa.pdf p. 12, lines 3–5`. Files with no text get a [`Skipped`] reason.
//! [`bm25`] ranks line-addressed passages for the `rag` baseline and the REPL's `search`.
//! [`collection`] keeps folders indexed in a SQLite catalog and tantivy; [`history`] keeps every
//! question asked, its answer and its run's events, in the same database.
//!
//! ```no_run
//! let folder = quarry_index::Folder::load("assets/demo".as_ref())?;
//! for (doc, layout) in folder.entries() {
//!     println!("{} ({} lines, {} {}s)", doc.path, doc.text.lines().count(), layout.pages.len(), layout.format.unit());
//! }
//! # Ok::<(), quarry_index::Error>(())
//! ```
//!
//! Which worker reads the files: [`LoadOptions::extractor`], by default the command given to
//! [`set_default_worker`] (the `quarry` and desktop executables set it at start-up). Without
//! one, only plain text and CSV/TSV are read, in process (decoding them runs no parser that can
//! crash), and other files get the reason [`NEEDS_WORKER`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

pub mod bm25;
pub mod collection;
pub mod corpus;
pub mod extract;
pub mod history;

pub use bm25::{passages, Bm25, Passage};
pub use collection::{GrepHit, Library, UpdateEvent, UpdateOptions, UpdateReport};
pub use corpus::{CollectionCorpus, Corpus, CorpusStats, MemoryCorpus, SearchHit};
pub use extract::host::CancelToken;
pub use extract::{Extracted, Extractor, ExtractorConfig, Kind, Page, WorkerCommand};
pub use history::History;

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
    /// The file gave no text, and why ("encrypted: this PDF needs a password to be read").
    #[error("{}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{}: cancelled", path.display())]
    Cancelled { path: PathBuf },
    #[error("the extraction worker could not be started: {message}")]
    Worker { message: String },
    /// The SQLite catalog of collections could not be read or written.
    #[error("the catalog {}: {message}", path.display())]
    Catalog { path: PathBuf, message: String },
    /// A collection's tantivy index could not be read or written.
    #[error("the index {}: {message}", path.display())]
    Index { path: PathBuf, message: String },
    #[error("the index {} is being updated by another Quarry; wait for it to finish, or stop it", path.display())]
    Locked { path: PathBuf },
    /// A collection's index was written by a Quarry with another index layout: `quarry index
    /// update` rebuilds it (issue 15's trigram postings came with version 2).
    #[error(
        "the index {} is of version {found}, and this Quarry reads version {wanted}; rebuild it from the files with `quarry index update{}`",
        path.display(),
        if collection.is_empty() { String::new() } else { format!(" {collection}") }
    )]
    Outdated { path: PathBuf, found: u64, wanted: u64, collection: String },
    /// A grep pattern or glob that does not parse.
    #[error("{pattern:?} is not a valid pattern: {message}")]
    Pattern { pattern: String, message: String },
    /// `read` of a path the corpus does not hold.
    #[error("no document named {path:?}; files() lists the documents there are")]
    NoDocument { path: String },
    /// `read` of a page a document does not have; `detail` says which pages it has.
    #[error("{path} has no page {page}: {detail}")]
    NoPage { path: String, page: String, detail: String },
    #[error("there is no collection named {name:?}; {}", known_names(known))]
    NoCollection { name: String, known: Vec<String> },
    #[error("the collection {name:?} already holds {}; choose another name with --name", root.display())]
    NameTaken { name: String, root: PathBuf },
    #[error("there is no run {id} in the history; `quarry history list` shows the runs there are")]
    NoRun { id: i64 },
    #[error("run {id} is still running; cancel it (or wait for it) before removing it")]
    RunRunning { id: i64 },
    #[error("{query:?} holds no word to search the history for")]
    EmptySearch { query: String },
}

fn known_names(known: &[String]) -> String {
    match known {
        [] => "add one with `quarry index add DIR`".into(),
        names => format!("the collections are: {}", names.join(", ")),
    }
}

/// Files larger than this are skipped with a note: they are data dumps, not documents, and would
/// crowd everything else out of a model's window. (Plain text; PDFs and Office files may be up
/// to [`extract::Options::max_document_bytes`].)
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// The reason a non-text file gets when no extraction worker is configured.
pub const NEEDS_WORKER: &str = "needs the extraction worker (quarry worker extract), which this program was not given";

static DEFAULT_WORKER: OnceLock<WorkerCommand> = OnceLock::new();

/// Names the executable whose `worker extract` reads documents for [`Folder::load`] (and
/// [`LoadOptions::default`]). The `quarry` binary passes itself; the desktop app passes the
/// `quarry` beside it. Only the first call counts.
pub fn set_default_worker(worker: WorkerCommand) {
    let _ = DEFAULT_WORKER.set(worker);
}

pub fn default_worker() -> Option<WorkerCommand> {
    DEFAULT_WORKER.get().cloned()
}

/// One text file of the corpus.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Document {
    /// Relative to the folder, with `/` separators: what citations show.
    pub path: String,
    pub text: String,
}

/// One page of a document, as lines of its [`Document::text`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageSpan {
    /// 1-based position (the physical page of a PDF).
    pub number: u32,
    /// What the document calls it: "iv", "12", a sheet's name.
    pub label: String,
    /// 1-based first line in the document's text.
    pub first_line: usize,
    pub line_count: usize,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ocr: bool,
    /// Why the page is empty, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How a document's lines fall into pages, and what read it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    pub format: Kind,
    pub extractor: String,
    pub pages: Vec<PageSpan>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Layout {
    /// A plain text of `lines` lines: one page.
    pub fn text(lines: usize) -> Layout {
        Layout {
            format: Kind::Text,
            extractor: "text".into(),
            pages: vec![PageSpan {
                number: 1,
                label: "1".into(),
                first_line: 1,
                line_count: lines,
                ocr: false,
                note: None,
            }],
            warnings: Vec::new(),
        }
    }

    pub fn of(ex: &Extracted) -> Layout {
        Layout {
            format: ex.kind,
            extractor: ex.extractor.clone(),
            pages: ex
                .pages
                .iter()
                .map(|p| PageSpan {
                    number: p.number,
                    label: p.label.clone(),
                    first_line: p.first_line,
                    line_count: p.line_count,
                    ocr: p.ocr,
                    note: p.note.clone(),
                })
                .collect(),
            warnings: ex.warnings.clone(),
        }
    }

    /// Whether citations name pages ([`Kind::is_paged`]).
    pub fn is_paged(&self) -> bool {
        self.format.is_paged()
    }

    pub fn line_count(&self) -> usize {
        self.pages.iter().map(|p| p.line_count).sum()
    }

    /// The page holding document line `line` (1-based), and the line's number within it.
    pub fn locate(&self, line: usize) -> Option<(&PageSpan, usize)> {
        let i = self.pages.partition_point(|p| p.first_line + p.line_count <= line);
        let p = self.pages[i..].iter().find(|p| p.line_count > 0)?;
        (line >= p.first_line && line < p.first_line + p.line_count).then(|| (p, line - p.first_line + 1))
    }

    /// The document line of line `line_in_page` (1-based) of page `number`.
    pub fn line_of(&self, number: u32, line_in_page: usize) -> Option<usize> {
        let p = self.page(number)?;
        (line_in_page >= 1 && line_in_page <= p.line_count).then(|| p.first_line + line_in_page - 1)
    }

    /// The page numbered `number` (1-based, physical).
    pub fn page(&self, number: u32) -> Option<&PageSpan> {
        self.pages.iter().find(|p| p.number == number)
    }

    /// The page a reader means by `page`: its label first ("iv", "12" as printed on it, a
    /// sheet's name), then its physical number.
    pub fn find_page(&self, page: &str) -> Option<&PageSpan> {
        self.page_labelled(page).or_else(|| page.parse().ok().and_then(|n| self.page(n)))
    }

    /// The first page whose label is `label` ("iv", "Sheet1").
    pub fn page_labelled(&self, label: &str) -> Option<&PageSpan> {
        self.pages.iter().find(|p| p.label == label)
    }

    /// A citation of document lines `first..=last`: `msa.pdf p. 12, lines 3–5` for paged
    /// formats (the label; lines counted within the page), `notes.txt:3-5` for text.
    pub fn cite(&self, path: &str, first: usize, last: usize) -> String {
        let last = last.max(first);
        if !self.is_paged() {
            return if first == last { format!("{path}:{first}") } else { format!("{path}:{first}-{last}") };
        }
        match (self.locate(first), self.locate(last)) {
            (Some((a, la)), Some((b, lb))) if a.number == b.number => {
                if la == lb {
                    format!("{path} p. {}, line {la}", a.label)
                } else {
                    format!("{path} p. {}, lines {la}\u{2013}{lb}", a.label)
                }
            }
            (Some((a, la)), Some((b, lb))) => {
                format!("{path} p. {}, line {la} \u{2013} p. {}, line {lb}", a.label, b.label)
            }
            _ => format!("{path}:{first}-{last}"),
        }
    }
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
    layouts: Vec<Layout>,
    skipped: Vec<Skipped>,
    /// The index these documents were read from ([`Library::folder`]): it answers `grep` and
    /// `search` over them, narrowing by its postings where a scan of the text in memory reads
    /// every byte. `None` for a folder read from disk.
    index: Option<FolderIndex>,
}

/// A [`Folder`]'s index, as a [`Corpus`].
#[derive(Clone)]
struct FolderIndex(std::sync::Arc<dyn Corpus>);

impl std::fmt::Debug for FolderIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FolderIndex")
    }
}

/// How [`Folder::load_with`] reads a folder.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The worker configuration (its `readable` is set to the folder); `None` reads only plain
    /// text, in process.
    pub extractor: Option<ExtractorConfig>,
    /// Worker processes reading files in parallel; 0 picks the number of CPUs (at most 4).
    pub workers: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            extractor: default_worker().map(|worker| ExtractorConfig { worker, ..Default::default() }),
            workers: 0,
        }
    }
}

/// Progress of [`Folder::load_with`].
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LoadEvent {
    /// The walk is done: this many files will be read.
    Walked { files: usize },
    /// A file is being read (`index` from 0).
    File { index: usize, total: usize, path: String },
    /// OCR of a scanned page of `path` is starting.
    Ocr { path: String, page: u32, done: usize, of: usize },
    /// A file is read, or got a reason.
    Read { path: String, pages: usize, ok: bool },
}

/// What the folder holds, by format (for the description the root model receives).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// (format, files, pages)
    pub formats: Vec<(String, usize, usize)>,
    pub ocr_pages: usize,
    pub skipped: usize,
}

pub(crate) struct Candidate {
    pub(crate) abs: PathBuf,
    pub(crate) rel: String,
    pub(crate) warning: Option<String>,
}

impl Folder {
    /// Reads every file under `root`, sorted by path so runs are reproducible, with the default
    /// [`LoadOptions`].
    pub fn load(root: &Path) -> Result<Folder> {
        Folder::load_with(root, &LoadOptions::default(), &|_| {}, None)
    }

    /// Reads every file under `root`: walks it, then extracts the files on `options.workers`
    /// confined workers. `progress` hears each step (from worker threads); `cancel` stops the
    /// load (the files read so far are dropped and [`Error::Cancelled`] returned).
    pub fn load_with(
        root: &Path,
        options: &LoadOptions,
        progress: &(dyn Fn(&LoadEvent) + Sync),
        cancel: Option<&CancelToken>,
    ) -> Result<Folder> {
        let meta = std::fs::metadata(root).map_err(|source| Error::Io { path: root.into(), source })?;
        if !meta.is_dir() {
            return Err(Error::NotAFolder { path: root.into() });
        }
        let (candidates, mut skipped) = walk(root);
        progress(&LoadEvent::Walked { files: candidates.len() });
        let results: Vec<Mutex<Option<std::result::Result<Extracted, String>>>> =
            candidates.iter().map(|_| Mutex::new(None)).collect();
        match &options.extractor {
            Some(config) => {
                let mut config = config.clone();
                config.readable = vec![std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf())];
                let workers = match options.workers {
                    0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(4),
                    n => n,
                }
                .min(candidates.len())
                .max(1);
                let next = AtomicUsize::new(0);
                let fatal: Mutex<Option<Error>> = Mutex::new(None);
                let cancelled = std::sync::atomic::AtomicBool::new(false);
                std::thread::scope(|s| {
                    for _ in 0..workers {
                        s.spawn(|| {
                            // Each thread owns its worker: PR_SET_PDEATHSIG follows the thread.
                            let mut extractor = match Extractor::new(config.clone()) {
                                Ok(e) => e,
                                Err(e) => {
                                    fatal.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                                    return;
                                }
                            };
                            if let Some(c) = cancel {
                                extractor.set_cancel_token(c.clone());
                            }
                            loop {
                                if cancel.is_some_and(|c| c.is_cancelled()) {
                                    cancelled.store(true, Ordering::SeqCst);
                                    return;
                                }
                                if fatal.lock().map(|f| f.is_some()).unwrap_or(true) {
                                    return;
                                }
                                let i = next.fetch_add(1, Ordering::SeqCst);
                                let Some(c) = candidates.get(i) else { return };
                                progress(&LoadEvent::File { index: i, total: candidates.len(), path: c.rel.clone() });
                                let outcome = extractor.extract(&c.abs, &mut |ev| {
                                    if let extract::Event::OcrPage { page, done, of } = ev {
                                        progress(&LoadEvent::Ocr { path: c.rel.clone(), page, done, of });
                                    }
                                });
                                let outcome = match outcome {
                                    Ok(ex) => Ok(ex),
                                    Err(Error::Unreadable { reason, .. }) => Err(reason),
                                    Err(Error::Cancelled { .. }) => {
                                        cancelled.store(true, Ordering::SeqCst);
                                        return;
                                    }
                                    Err(e) => {
                                        fatal.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                                        return;
                                    }
                                };
                                let (pages, ok) = match &outcome {
                                    Ok(ex) => (ex.pages.len(), true),
                                    Err(_) => (0, false),
                                };
                                progress(&LoadEvent::Read { path: c.rel.clone(), pages, ok });
                                *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
                            }
                        });
                    }
                });
                if let Some(e) = fatal.into_inner().unwrap_or_else(|p| p.into_inner()) {
                    return Err(e);
                }
                if cancelled.load(Ordering::SeqCst) {
                    return Err(Error::Cancelled { path: root.into() });
                }
            }
            None => {
                let opts = extract::Options::default();
                for (i, c) in candidates.iter().enumerate() {
                    if cancel.is_some_and(|c| c.is_cancelled()) {
                        return Err(Error::Cancelled { path: root.into() });
                    }
                    progress(&LoadEvent::File { index: i, total: candidates.len(), path: c.rel.clone() });
                    let outcome = read_plain_text(&c.abs, &opts).map_err(|u| u.0);
                    *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
                }
            }
        }
        let mut documents = Vec::new();
        let mut layouts = Vec::new();
        for (c, r) in candidates.into_iter().zip(results) {
            let outcome = r.into_inner().unwrap_or_else(|p| p.into_inner());
            match outcome {
                Some(Ok(ex)) if ex.has_text() => {
                    let mut layout = Layout::of(&ex);
                    layout.warnings.extend(c.warning);
                    documents.push(Document { path: c.rel, text: ex.text() });
                    layouts.push(layout);
                }
                Some(Ok(ex)) => skipped.push(Skipped { path: c.rel, reason: no_text_reason(&ex) }),
                Some(Err(reason)) => skipped.push(Skipped { path: c.rel, reason }),
                None => skipped.push(Skipped { path: c.rel, reason: "not read".into() }),
            }
        }
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        if documents.is_empty() {
            return Err(Error::Empty { path: root.into() });
        }
        Ok(Folder { root: root.into(), documents, layouts, skipped, index: None })
    }

    /// A folder made of given documents (pasted text, a child run's piece of context, tests).
    pub fn from_documents(root: impl Into<PathBuf>, documents: Vec<Document>) -> Folder {
        let layouts = documents.iter().map(|d| Layout::text(d.text.lines().count())).collect();
        Folder { root: root.into(), documents, layouts, skipped: Vec::new(), index: None }
    }

    /// A folder of given documents with their layouts (a child run's documents keep pages).
    pub fn from_parts(root: impl Into<PathBuf>, parts: Vec<(Document, Layout)>) -> Folder {
        let (documents, layouts) = parts.into_iter().unzip();
        Folder { root: root.into(), documents, layouts, skipped: Vec::new(), index: None }
    }

    /// The document at `path` (relative, `/`-separated), if any.
    pub fn document(&self, path: &str) -> Option<&Document> {
        self.documents.iter().find(|d| d.path == path)
    }

    /// The layout of the document at `path`.
    pub fn layout(&self, path: &str) -> Option<&Layout> {
        self.documents.iter().position(|d| d.path == path).map(|i| &self.layouts[i])
    }

    /// A collection's documents, read from its `index`, which answers `grep` and `search`.
    pub(crate) fn from_index(
        root: PathBuf,
        documents: Vec<Document>,
        layouts: Vec<Layout>,
        skipped: Vec<Skipped>,
        index: std::sync::Arc<dyn Corpus>,
    ) -> Folder {
        Folder { root, documents, layouts, skipped, index: Some(FolderIndex(index)) }
    }

    /// The index that answers `grep` and `search` over these documents, if they came from one.
    pub fn index(&self) -> Option<std::sync::Arc<dyn Corpus>> {
        self.index.as_ref().map(|i| i.0.clone())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn documents(&self) -> &[Document] {
        &self.documents
    }

    /// One layout per document, in the same order as [`Folder::documents`].
    pub fn layouts(&self) -> &[Layout] {
        &self.layouts
    }

    /// Each document with its layout.
    pub fn entries(&self) -> impl Iterator<Item = (&Document, &Layout)> {
        self.documents.iter().zip(&self.layouts)
    }

    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    pub fn total_chars(&self) -> usize {
        self.documents.iter().map(|d| d.text.chars().count()).sum()
    }

    /// Files and pages by format, most files first.
    pub fn summary(&self) -> Summary {
        let mut by: std::collections::BTreeMap<&'static str, (usize, usize)> = Default::default();
        let mut ocr_pages = 0;
        for l in &self.layouts {
            let e = by.entry(l.format.name()).or_default();
            e.0 += 1;
            e.1 += l.pages.len();
            ocr_pages += l.pages.iter().filter(|p| p.ocr).count();
        }
        let mut formats: Vec<(String, usize, usize)> =
            by.into_iter().map(|(k, (f, p))| (k.to_string(), f, p)).collect();
        formats.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Summary { formats, ocr_pages, skipped: self.skipped.len() }
    }
}

impl Summary {
    /// `3 pdf (212 pages), 2 docx (5 sections), 4 text`: files and pages by format.
    pub fn formats_line(&self) -> String {
        self.formats
            .iter()
            .map(|(format, files, pages)| {
                let unit = Kind::ALL.iter().find(|k| k.name() == format).map_or("page", |k| k.unit());
                match format.as_str() {
                    "text" => format!("{files} text"),
                    _ => format!("{files} {format} ({pages} {unit}{})", if *pages == 1 { "" } else { "s" }),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a document that opened has no text: its pages' notes, or "an empty document".
pub(crate) fn no_text_reason(ex: &Extracted) -> String {
    let n = ex.pages.len();
    let mut notes: Vec<(&str, usize)> = Vec::new();
    for note in ex.pages.iter().filter_map(|p| p.note.as_deref()) {
        match notes.iter_mut().find(|(t, _)| *t == note) {
            Some(e) => e.1 += 1,
            None => notes.push((note, 1)),
        }
    }
    match notes.as_slice() {
        [] if ex.kind.unit() == "text" => "no text (an empty document)".into(),
        [] => {
            format!("no text (an empty document: {n} {}{} without text)", ex.kind.unit(), if n == 1 { "" } else { "s" })
        }
        [(note, _)] if n == 1 => note.to_string(),
        [(note, c)] if *c == n => format!("{note}, on all {n} pages"),
        _ => format!(
            "no text on any of its {n} pages: {}",
            notes.iter().map(|(t, c)| format!("{c} \u{d7} {t}")).collect::<Vec<_>>().join("; ")
        ),
    }
}

/// Plain text and CSV/TSV in process, when no worker is configured (see the crate docs).
pub(crate) fn read_plain_text(
    path: &Path,
    options: &extract::Options,
) -> std::result::Result<Extracted, extract::Unreadable> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| extract::io_reason(&e))?;
    let mut f = std::fs::File::open(path).map_err(|e| extract::io_reason(&e))?;
    let mut head = vec![0u8; extract::SNIFF_BYTES.min(meta.len() as usize)];
    f.read_exact(&mut head).map_err(|e| extract::io_reason(&e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match extract::detect::sniff(&head, &name, meta.len()) {
        extract::Detected::Kind(k @ (Kind::Text | Kind::Csv | Kind::Tsv)) => {
            if meta.len() > options.max_text_file_bytes {
                return Err(extract::Unreadable::new(format!(
                    "too large: {} (text files are read up to {})",
                    extract::human_bytes(meta.len()),
                    extract::human_bytes(options.max_text_file_bytes)
                )));
            }
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            std::fs::File::open(path)
                .and_then(|f| f.take(meta.len()).read_to_end(&mut bytes))
                .map_err(|e| extract::io_reason(&e))?;
            extract::extract_kind(k, &bytes, &name, options, None, 0)
        }
        extract::Detected::Unsupported(reason) => Err(extract::Unreadable(reason)),
        _ => Err(extract::Unreadable::new(NEEDS_WORKER)),
    }
}

/// Walks `root`: the files to read, and what was passed over with its reason.
pub(crate) fn walk(root: &Path) -> (Vec<Candidate>, Vec<Skipped>) {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let canonical_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    for entry in ignore::WalkBuilder::new(root)
        .hidden(true)
        .git_ignore(true)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .build()
    {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let (path, reason) = walk_error(root, &e);
                skipped.push(Skipped { path, reason });
                continue;
            }
        };
        let Some(ft) = entry.file_type() else { continue };
        let rel = relative(root, entry.path());
        if ft.is_symlink() {
            match std::fs::metadata(entry.path()) {
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    skipped
                        .push(Skipped { path: rel, reason: "a symbolic link loop (it leads back to itself)".into() });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    skipped.push(Skipped {
                        path: rel,
                        reason: "a broken symbolic link (its target does not exist)".into(),
                    });
                }
                Err(e) => {
                    skipped.push(Skipped { path: rel, reason: format!("a symbolic link that cannot be followed: {e}") })
                }
                Ok(m) if m.is_dir() => {
                    skipped.push(Skipped {
                        path: rel,
                        reason: "a link to a folder (links to folders are not followed)".into(),
                    });
                }
                Ok(_) => {
                    let inside = std::fs::canonicalize(entry.path()).is_ok_and(|t| t.starts_with(&canonical_root));
                    if inside {
                        files.push(candidate(entry.path(), rel));
                    } else {
                        skipped.push(Skipped {
                            path: rel,
                            reason: "a link to a file outside the folder (not read)".into(),
                        });
                    }
                }
            }
            continue;
        }
        if ft.is_file() {
            files.push(candidate(entry.path(), rel));
        } else if !ft.is_dir() {
            skipped.push(Skipped { path: rel, reason: "not a regular file (a device, socket or pipe)".into() });
        }
    }
    (files, skipped)
}

fn candidate(abs: &Path, rel: String) -> Candidate {
    let warning = abs
        .file_name()
        .and_then(|n| n.to_str())
        .is_none()
        .then(|| format!("its file name is not valid UTF-8; it is shown as {rel:?}"));
    let abs = if abs.is_absolute() {
        abs.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(abs)).unwrap_or_else(|_| abs.to_path_buf())
    };
    Candidate { abs, rel, warning }
}

fn walk_error(root: &Path, e: &ignore::Error) -> (String, String) {
    fn inner(e: &ignore::Error) -> (Option<&Path>, String) {
        match e {
            ignore::Error::WithPath { path, err } => (Some(path.as_path()), inner(err).1),
            ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => inner(err),
            ignore::Error::Loop { child, .. } => (Some(child.as_path()), "a symbolic link loop".into()),
            ignore::Error::Io(io) => (None, extract::io_reason(io).0),
            other => (None, other.to_string()),
        }
    }
    let (path, reason) = inner(e);
    (path.map(|p| relative(root, p)).unwrap_or_default(), reason)
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
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
