//! Bringing a collection up to date with its folder: recover from a crash, walk, compare with
//! the catalog, read what changed on the confined workers, and write it in batches.
//!
//! **Which files are read.** The walk is the source of truth (the same `ignore` walk as
//! [`crate::Folder::load`]). A file is read when it is new, pending, its size or mtime changed,
//! or its mtime is too recent to trust: a file rewritten within the timestamp granularity of
//! the moment it was read looks unchanged to `stat` (git's "racy git",
//! git-scm.com/docs/racy-git), so a file whose mtime is within [`RACY_NS`] of its read time is
//! hashed again on the next walk. A file whose bytes hash as before (`touch`, a racy file that
//! did not change) only gets its new stat; its chunks are kept. A file that changes while it is
//! read (its stat differs before and after) is left for the next update.
//!
//! **The batch protocol** (notes/index.md §3.3), per batch of generation G:
//! 1. the catalog records batch G `open` with every file row it will write (synchronous=FULL);
//! 2. each file's old chunks are deleted (`delete_term`) and its new ones added with `gen = G`;
//! 3. tantivy commits with the payload `{"gen": G}`;
//! 4. the catalog applies batch G's rows to `files` and marks it committed.
//!
//! A file is therefore never marked indexed before tantivy committed it (the bug of
//! fagemx/edda#413). After a kill, [`recover`] compares the index's last payload with the open
//! batches: those it holds are rolled forward (step 4 again), the others dropped, and their files
//! are found changed by the next walk. An interrupted run resumes there: what was committed stays.
//!
//! **Bounded memory.** Commits happen every [`UpdateOptions::batch_bytes`] of text (or
//! `batch_seconds`, or `batch_files`), never per file; tantivy's queue holds at most one batch.
//! Text read but not yet given to tantivy is bounded in bytes too ([`ByteGate`]), so memory does
//! not grow with the folder, whatever its files are.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Condvar, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::catalog::{Catalog, Change, CollectionRow, FileRow, Status};
use super::chunks::Chunks;
use crate::extract::{self, Extracted, ExtractorConfig};
use crate::{CancelToken, Error, Extractor, Layout, Result};

/// A file whose mtime is this close to the moment it was read is hashed again on the next walk.
/// Two seconds covers FAT's 2 s mtimes and the coarse clock (a jiffy) Linux stamps files with.
pub const RACY_NS: i64 = 2_000_000_000;

/// How an update reads and writes.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    /// The worker configuration (its `readable` is set to the folder); `None` reads only plain
    /// text, in process, as [`crate::LoadOptions::extractor`].
    pub extractor: Option<ExtractorConfig>,
    /// Workers reading files in parallel; 0 picks the number of CPUs (at most 4).
    pub workers: usize,
    /// Commit once this much text is waiting (tantivy's queue and memory stay below it).
    pub batch_bytes: u64,
    /// Commit after this many files.
    pub batch_files: usize,
    /// Commit at least this often while reading.
    pub batch_seconds: u64,
}

impl Default for UpdateOptions {
    fn default() -> Self {
        UpdateOptions {
            extractor: crate::default_worker().map(|worker| ExtractorConfig { worker, ..Default::default() }),
            workers: 0,
            // notes/index.md §3.3 suggests 30–60 s or ~256 MB; 64 MB keeps peak memory far below
            // the 400 MB target with 32 MB documents in flight.
            batch_bytes: 64 << 20,
            batch_files: 5_000,
            batch_seconds: 30,
        }
    }
}

/// Progress of an update, for bars and the window.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UpdateEvent {
    /// After a crash: batches the index held (applied) and batches it did not (dropped).
    Recovered { rolled_forward: usize, rolled_back: usize },
    /// The walk is compared with the catalog.
    Scanned { files: usize, unchanged: usize, to_read: usize, to_remove: usize, bytes_to_read: u64 },
    /// A file is done: read, failed (with its reason), or found unchanged.
    Read { path: String, bytes: u64, ok: bool, reason: Option<String> },
    /// OCR of a scanned page of `path` is starting.
    Ocr { path: String, page: u32, done: usize, of: usize },
    /// Batch `generation` is committed.
    Committed { generation: u64, files: usize, bytes: u64 },
}

/// What an update did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UpdateReport {
    pub files: usize,
    pub unchanged: usize,
    pub indexed: usize,
    pub failed: usize,
    pub removed: usize,
    /// Read again because of their stat, found byte-identical.
    pub same_content: usize,
    /// Changed while being read: left for the next update.
    pub changed_while_reading: usize,
    pub batches: usize,
    /// Bytes of files read.
    pub bytes_read: u64,
    pub text_bytes: u64,
    pub seconds: f64,
    pub cancelled: bool,
    pub rolled_forward: usize,
    pub rolled_back: usize,
}

/// Rolls the catalog forward or back to the index's last commit (the module docs). Call with
/// the index's writer held, so no other process is mid-batch.
pub fn recover(catalog: &mut Catalog, chunks: &Chunks, collection: i64) -> Result<(usize, usize)> {
    let committed = chunks.committed_generation()?;
    let (mut forward, mut back) = (0, 0);
    for g in catalog.open_batches(collection)? {
        if g <= committed {
            catalog.apply_batch(collection, g)?;
            forward += 1;
        } else {
            catalog.drop_batch(collection, g)?;
            back += 1;
        }
    }
    catalog.forget_newer_than(collection, committed)?;
    Ok((forward, back))
}

/// Nanoseconds since the epoch of a file's mtime.
fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
}

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// sha256 of a file's bytes, streamed.
fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Blocks producers while more than `limit` bytes of read text wait for the indexer.
struct ByteGate {
    waiting: Mutex<u64>,
    freed: Condvar,
    limit: u64,
}

impl ByteGate {
    fn acquire(&self, n: u64, cancel: &CancelToken) {
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        // One item larger than the limit still passes alone, or it would never pass.
        while *w > 0 && *w + n > self.limit && !cancel.is_cancelled() {
            w = self.freed.wait_timeout(w, Duration::from_millis(100)).unwrap_or_else(|p| p.into_inner()).0;
        }
        *w += n;
    }

    fn release(&self, n: u64) {
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        *w = w.saturating_sub(n);
        self.freed.notify_all();
    }
}

struct Task {
    id: i64,
    rel: String,
    abs: PathBuf,
    old: Option<FileRow>,
    warning: Option<String>,
    /// Read again whatever its bytes: it was read with OCR the other way ([`read_with_other_ocr`]).
    reread: bool,
}

/// Whether `file` was read with OCR set the other way from `ocr`: it holds pages read by OCR
/// and OCR is now off, or pages left empty because OCR was off and it is now on. Its bytes are
/// the same, but its text would not be: `quarry ask --folder DIR --no-ocr` after a question
/// with OCR went on citing OCR text (cli test `ask_reads_scanned_pages_by_ocr_unless_told_not_to`).
fn read_with_other_ocr(file: &FileRow, ocr: bool) -> bool {
    let turned_off = |note: &str| note.contains(crate::extract::ocr::TURNED_OFF);
    if ocr && file.reason.as_deref().is_some_and(turned_off) {
        return true;
    }
    let Some(layout) = file.parsed_layout() else {
        return false;
    };
    layout.pages.iter().any(|p| if ocr { p.note.as_deref().is_some_and(turned_off) } else { p.ocr })
}

enum Outcome {
    /// Same bytes as the catalog says: only the stat is new.
    Same {
        size: u64,
        mtime: i64,
        read: i64,
    },
    Read {
        ex: Box<Extracted>,
        size: u64,
        mtime: i64,
        read: i64,
        hash: String,
    },
    Failed {
        reason: String,
        size: Option<u64>,
        mtime: Option<i64>,
        read: i64,
        hash: Option<String>,
    },
    ChangedWhileReading,
}

/// Reads one task's file: stat, hash, extract, stat again.
fn read_one(
    task: &Task,
    extractor: Option<&mut Extractor>,
    progress: &(dyn Fn(&UpdateEvent) + Sync),
) -> Result<Outcome> {
    let read = now_ns();
    let before = match std::fs::metadata(&task.abs) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Outcome::Failed { reason: extract::io_reason(&e).0, size: None, mtime: None, read, hash: None })
        }
    };
    let (size, mtime) = (before.len(), mtime_ns(&before));
    let hash = match hash_file(&task.abs) {
        Ok(h) => h,
        Err(e) => {
            return Ok(Outcome::Failed {
                reason: extract::io_reason(&e).0,
                size: Some(size),
                mtime: Some(mtime),
                read,
                hash: None,
            })
        }
    };
    if let Some(old) = task.old.as_ref().filter(|_| !task.reread) {
        if old.status != Status::Pending && old.hash.as_deref() == Some(hash.as_str()) {
            return Ok(Outcome::Same { size, mtime, read });
        }
    }
    let extracted = match extractor {
        Some(ex) => ex.extract(&task.abs, &mut |ev| {
            if let extract::Event::OcrPage { page, done, of } = ev {
                progress(&UpdateEvent::Ocr { path: task.rel.clone(), page, done, of });
            }
        }),
        None => crate::read_plain_text(&task.abs, &extract::Options::default())
            .map_err(|u| Error::Unreadable { path: task.abs.clone(), reason: u.0 }),
    };
    let after = std::fs::metadata(&task.abs).ok();
    if after.as_ref().map(|m| (m.len(), mtime_ns(m))) != Some((size, mtime)) {
        return Ok(Outcome::ChangedWhileReading);
    }
    match extracted {
        Ok(ex) => Ok(Outcome::Read { ex: Box::new(ex), size, mtime, read, hash }),
        Err(Error::Unreadable { reason, .. }) => {
            Ok(Outcome::Failed { reason, size: Some(size), mtime: Some(mtime), read, hash: Some(hash) })
        }
        Err(e) => Err(e),
    }
}

/// The batch being gathered.
struct Batch {
    generation: u64,
    changes: Vec<Change>,
    same: Vec<(i64, u64, i64, i64)>,
    bytes: u64,
    started: Instant,
}

struct Writer<'a> {
    catalog: &'a mut Catalog,
    chunks: &'a Chunks,
    writer: tantivy::IndexWriter,
    collection: i64,
    batch: Batch,
    options: &'a UpdateOptions,
    report: UpdateReport,
}

impl Writer<'_> {
    fn due(&self) -> bool {
        let b = &self.batch;
        b.bytes >= self.options.batch_bytes
            || b.changes.len() >= self.options.batch_files
            || b.started.elapsed() >= Duration::from_secs(self.options.batch_seconds)
    }

    /// Steps 1, 3 and 4 of the protocol for the batch gathered so far.
    fn flush(&mut self, progress: &(dyn Fn(&UpdateEvent) + Sync)) -> Result<()> {
        if !self.batch.same.is_empty() {
            self.catalog.refresh_stat(&std::mem::take(&mut self.batch.same))?;
        }
        if self.batch.changes.is_empty() {
            self.batch.started = Instant::now();
            return Ok(());
        }
        let g = self.batch.generation;
        self.catalog.open_batch(self.collection, g, &self.batch.changes, self.batch.bytes)?;
        self.chunks.commit(&mut self.writer, g)?;
        self.catalog.apply_batch(self.collection, g)?;
        progress(&UpdateEvent::Committed { generation: g, files: self.batch.changes.len(), bytes: self.batch.bytes });
        self.report.batches += 1;
        self.batch =
            Batch { generation: g + 1, changes: Vec::new(), same: Vec::new(), bytes: 0, started: Instant::now() };
        Ok(())
    }

    /// Step 2 for one file's outcome.
    fn take(&mut self, task: &Task, outcome: Outcome, progress: &(dyn Fn(&UpdateEvent) + Sync)) -> Result<()> {
        let g = self.batch.generation;
        match outcome {
            Outcome::ChangedWhileReading => {
                self.report.changed_while_reading += 1;
                progress(&UpdateEvent::Read {
                    path: task.rel.clone(),
                    bytes: 0,
                    ok: false,
                    reason: Some("changed while it was read; it is read again by the next update".into()),
                });
            }
            Outcome::Same { size, mtime, read } => {
                self.report.same_content += 1;
                self.batch.same.push((task.id, size, mtime, read));
                progress(&UpdateEvent::Read { path: task.rel.clone(), bytes: size, ok: true, reason: None });
            }
            Outcome::Read { ex, size, mtime, read, hash } if ex.has_text() => {
                let n = self.chunks.add_file(&self.writer, task.id as u64, &task.rel, &ex.pages, g)?;
                let text = ex.text();
                let mut layout = Layout::of(&ex);
                layout.warnings.extend(task.warning.clone());
                self.batch.bytes += text.len() as u64;
                self.report.bytes_read += size;
                self.report.text_bytes += text.len() as u64;
                self.report.indexed += 1;
                self.batch.changes.push(Change::Read(Box::new(FileRow {
                    id: task.id,
                    path: task.rel.clone(),
                    status: Status::Indexed,
                    size: Some(size),
                    mtime_ns: Some(mtime),
                    read_ns: Some(read),
                    hash: Some(hash),
                    format: Some(ex.kind.name().into()),
                    pages: ex.pages.len() as u64,
                    chunks: n,
                    text_bytes: text.len() as u64,
                    text_hash: Some(sha256_hex(text.as_bytes())),
                    layout: serde_json::to_string(&layout).ok(),
                    reason: None,
                    generation: g,
                })));
                progress(&UpdateEvent::Read { path: task.rel.clone(), bytes: size, ok: true, reason: None });
            }
            Outcome::Read { ex, size, mtime, read, hash } => {
                let reason = crate::no_text_reason(&ex);
                self.fail(
                    task,
                    reason,
                    Some(size),
                    Some(mtime),
                    read,
                    Some(hash),
                    Some(ex.kind.name().into()),
                    progress,
                );
            }
            Outcome::Failed { reason, size, mtime, read, hash } => {
                self.fail(task, reason, size, mtime, read, hash, None, progress);
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn fail(
        &mut self,
        task: &Task,
        reason: String,
        size: Option<u64>,
        mtime: Option<i64>,
        read: i64,
        hash: Option<String>,
        format: Option<String>,
        progress: &(dyn Fn(&UpdateEvent) + Sync),
    ) {
        self.chunks.remove_file(&self.writer, task.id as u64);
        self.report.failed += 1;
        self.report.bytes_read += size.unwrap_or(0);
        progress(&UpdateEvent::Read {
            path: task.rel.clone(),
            bytes: size.unwrap_or(0),
            ok: false,
            reason: Some(reason.clone()),
        });
        self.batch.changes.push(Change::Read(Box::new(FileRow {
            id: task.id,
            path: task.rel.clone(),
            status: Status::Failed,
            size,
            mtime_ns: mtime,
            read_ns: Some(read),
            hash,
            format,
            pages: 0,
            chunks: 0,
            text_bytes: 0,
            text_hash: None,
            layout: None,
            reason: Some(reason),
            generation: self.batch.generation,
        })));
    }
}

/// Updates `collection` from its folder; see the module docs.
pub fn update(
    catalog: &mut Catalog,
    chunks: &Chunks,
    collection: &CollectionRow,
    options: &UpdateOptions,
    progress: &(dyn Fn(&UpdateEvent) + Sync),
    cancel: Option<&CancelToken>,
) -> Result<UpdateReport> {
    let started = Instant::now();
    let root = &collection.root;
    let meta = std::fs::metadata(root).map_err(|source| Error::Io { path: root.clone(), source })?;
    if !meta.is_dir() {
        return Err(Error::NotAFolder { path: root.clone() });
    }
    let writer = chunks.writer()?;
    let id = collection.id;
    if chunks.committed_version()?.is_none() {
        // An index that never committed holds nothing, whatever the catalog says: it is new, or
        // was rebuilt for another INDEX_VERSION ([`Chunks::open_for_update`]), or its folder was
        // deleted. Every file is read again.
        catalog.forget_newer_than(id, 0)?;
    }
    let (rolled_forward, rolled_back) = recover(catalog, chunks, id)?;
    if rolled_forward + rolled_back > 0 {
        progress(&UpdateEvent::Recovered { rolled_forward, rolled_back });
    }

    // Walk and compare.
    let ocr = options.extractor.as_ref().is_some_and(|c| c.ocr);
    let (candidates, skipped) = crate::walk(root);
    let known: HashMap<String, FileRow> = catalog.files(id)?.into_iter().map(|f| (f.path.clone(), f)).collect();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut new_paths = Vec::new();
    let mut tasks: Vec<Task> = Vec::new();
    let mut unchanged = 0usize;
    let mut bytes_to_read = 0u64;
    for c in &candidates {
        seen.insert(c.rel.as_str());
        let old = known.get(&c.rel);
        let stat = std::fs::metadata(&c.abs).ok().map(|m| (m.len(), mtime_ns(&m)));
        let reread = old.is_some_and(|o| read_with_other_ocr(o, ocr));
        let fresh = match (old, stat) {
            (Some(o), Some((size, mtime))) => {
                o.status != Status::Pending
                    && o.size == Some(size)
                    && o.mtime_ns == Some(mtime)
                    && o.read_ns.is_some_and(|r| mtime + RACY_NS <= r)
                    && !reread
            }
            _ => false,
        };
        if fresh {
            unchanged += 1;
            continue;
        }
        bytes_to_read += stat.map_or(0, |s| s.0);
        if old.is_none() {
            new_paths.push(c.rel.clone());
        }
        tasks.push(Task {
            id: old.map_or(0, |o| o.id),
            rel: c.rel.clone(),
            abs: c.abs.clone(),
            old: old.cloned(),
            warning: c.warning.clone(),
            reread,
        });
    }
    // Files the walk passed over keep a row with their reason ("every file indexed or listed").
    let mut walk_failures = Vec::new();
    for s in &skipped {
        if s.path.is_empty() || !seen.insert(s.path.as_str()) {
            continue;
        }
        match known.get(&s.path) {
            Some(o) if o.status == Status::Failed && o.reason.as_deref() == Some(s.reason.as_str()) => unchanged += 1,
            Some(o) => walk_failures.push((o.id, s)),
            None => {
                new_paths.push(s.path.clone());
                walk_failures.push((0, s));
            }
        }
    }
    let removed: Vec<i64> = known.values().filter(|f| !seen.contains(f.path.as_str())).map(|f| f.id).collect();
    let ids: HashMap<String, i64> = new_paths.iter().cloned().zip(catalog.add_pending(id, &new_paths)?).collect();
    for t in &mut tasks {
        if t.id == 0 {
            t.id = ids[&t.rel];
        }
    }
    progress(&UpdateEvent::Scanned {
        files: candidates.len() + walk_failures.len(),
        unchanged,
        to_read: tasks.len(),
        to_remove: removed.len(),
        bytes_to_read,
    });

    let generation = catalog.last_generation(id)?.max(chunks.committed_generation()?) + 1;
    let mut w = Writer {
        catalog,
        chunks,
        writer,
        collection: id,
        batch: Batch { generation, changes: Vec::new(), same: Vec::new(), bytes: 0, started: Instant::now() },
        options,
        report: UpdateReport { files: candidates.len(), unchanged, rolled_forward, rolled_back, ..Default::default() },
    };
    for rid in &removed {
        w.chunks.remove_file(&w.writer, *rid as u64);
        w.batch.changes.push(Change::Removed { id: *rid });
        w.report.removed += 1;
    }
    for (fid, s) in walk_failures {
        let fid = if fid == 0 { ids[&s.path] } else { fid };
        let task =
            Task { id: fid, rel: s.path.clone(), abs: root.join(&s.path), old: None, warning: None, reread: false };
        w.fail(&task, s.reason.clone(), None, None, now_ns(), None, None, progress);
    }

    let own_cancel = CancelToken::default();
    let cancel = cancel.unwrap_or(&own_cancel);
    let outcome = read_all(&tasks, root, options, progress, cancel, &mut w);
    // What was read completely is committed even when reading stopped (Ctrl-C, a fatal error).
    let flushed = w.flush(progress);
    outcome?;
    flushed?;
    let mut report = std::mem::take(&mut w.report);
    report.cancelled = cancel.is_cancelled();
    let Writer { writer, catalog, .. } = w;
    if !report.cancelled {
        catalog.set_updated(id)?;
    }
    // A clean stop lets a merge in progress finish (notes/index.md: dropping the writer
    // mid-merge left meta.json and .del files out of step in tantivy-go).
    writer.wait_merging_threads().map_err(|e| Error::Index { path: chunks.dir().into(), message: e.to_string() })?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Reads every task on the workers and hands the outcomes to `w` in arrival order.
fn read_all(
    tasks: &[Task],
    root: &Path,
    options: &UpdateOptions,
    progress: &(dyn Fn(&UpdateEvent) + Sync),
    cancel: &CancelToken,
    w: &mut Writer<'_>,
) -> Result<()> {
    if tasks.is_empty() {
        return Ok(());
    }
    let workers = match options.workers {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(4),
        n => n,
    }
    .min(tasks.len())
    .max(1);
    let config = options.extractor.clone().map(|mut c| {
        c.readable = vec![std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf())];
        c
    });
    let gate = ByteGate { waiting: Mutex::new(0), freed: Condvar::new(), limit: options.batch_bytes.max(1 << 20) };
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Result<Outcome>, u64)>();
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..workers {
            let tx = tx.clone();
            let (config, gate, next) = (&config, &gate, &next);
            s.spawn(move || {
                // Each thread owns its worker: PR_SET_PDEATHSIG follows the thread.
                let mut extractor = match config {
                    Some(c) => match Extractor::new(c.clone()) {
                        Ok(mut e) => {
                            e.set_cancel_token(cancel.clone());
                            Some(e)
                        }
                        Err(e) => {
                            let _ = tx.send((usize::MAX, Err(e), 0));
                            return;
                        }
                    },
                    None => None,
                };
                loop {
                    if cancel.is_cancelled() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(task) = tasks.get(i) else { return };
                    let outcome = read_one(task, extractor.as_mut(), progress);
                    if matches!(outcome, Err(Error::Cancelled { .. })) {
                        return;
                    }
                    let bytes = match &outcome {
                        Ok(Outcome::Read { ex, .. }) => ex.pages.iter().map(|p| p.text.len() as u64).sum(),
                        _ => 0,
                    };
                    gate.acquire(bytes, cancel);
                    if tx.send((i, outcome, bytes)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut failure = None;
        for (i, outcome, bytes) in rx {
            if failure.is_some() {
                gate.release(bytes);
                continue;
            }
            let step = outcome.and_then(|o| w.take(&tasks[i], o, progress)).and_then(|()| match w.due() {
                true => w.flush(progress),
                false => Ok(()),
            });
            gate.release(bytes);
            if let Err(e) = step {
                // Stop the other workers; what is committed stays.
                cancel.cancel();
                failure = Some(e);
            }
        }
        failure.map_or(Ok(()), Err)
    })
}
