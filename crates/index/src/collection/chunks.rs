//! The full-text index of one collection: tantivy, one document per chunk of a file's text.
//!
//! A chunk is whole lines of one page, at most [`CHUNK_BYTES`] (a longer line is a chunk of its
//! own, never cut): one huge file cannot make every query expensive, a chunk never straddles a
//! page, so its `page` is exact, and a match never crosses a chunk (a non-multiline match never
//! crosses a `\n`). Fields:
//!
//! - `file` (u64, indexed, fast, stored): the catalog's file id; `delete_term` on it drops a
//!   file's chunks, which makes re-adding a file idempotent.
//! - `path` (stored): the file's path, so a hit needs no catalog lookup.
//! - `page`, `line`, `chunk` (u64, stored): the page number, the document line the chunk
//!   starts at (1-based), and the chunk's position in the file.
//! - `gen` (u64, indexed, fast, stored): the batch that wrote the chunk.
//! - `text` (BM25, stored): the chunk's text; frequencies without positions (no phrase
//!   queries yet), which keeps the postings small.
//! - `tri` (u64, indexed, multi-valued, doc ids only): the distinct byte trigrams of the chunk's
//!   ASCII-lowercased text ([`trigrams`]), the postings that narrow `grep` to the chunks that can
//!   match (codesearch's design, notes/index.md §3.1). One value per distinct trigram, not one
//!   token per byte: a 64 KiB chunk of prose has about 10,000 of them. Lowercasing only ASCII
//!   keeps the fold byte-local (`fold(literal)` is in `fold(text)` whenever `literal` is in
//!   `text`), so one field serves `-i` and case-sensitive patterns alike ([`super::grep`]).
//!
//! Every commit carries `{"gen": G}` as its payload ([`Chunks::committed_generation`]): the
//! catalog compares it with its open batches after a crash.

use std::path::{Path, PathBuf};

use tantivy::collector::DocSetCollector;
use tantivy::directory::MmapDirectory;
use tantivy::query::TermQuery;
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED,
};
use tantivy::{Index, IndexReader, IndexWriter, TantivyDocument, Term};

use crate::{Error, Result};

/// The largest chunk, in bytes of text. qgrep uses 512 KB; notes/index.md §3.1 suggests
/// 32–128 KB. A grep candidate costs its chunk's decompression, which is most of a grep's time
/// (perf: 40–50% in tantivy's LZ4 decompressor), so smaller chunks make narrowed greps cheaper:
/// on ../shared/corpora, 16 KiB instead of 64 KiB took `Article 17` from 241 candidates and
/// 14 ms to 162 and 5 ms, for an index of 41 MB instead of 38 MB (56 MB of text). It is also
/// tantivy's doc store block, and a BM25 hit small enough to show.
pub const CHUNK_BYTES: usize = 16 << 10;

/// The schema's version, in each commit's payload. An index of another version (1: before the
/// `tri` field) fails to open with [`Error::Outdated`], and `quarry index update` rebuilds it
/// ([`Chunks::open_for_update`]).
pub const INDEX_VERSION: u64 = 2;

/// tantivy's indexing memory: one thread with 48 MB before it flushes a segment (tantivy's
/// minimum is 15 MB per thread). With one merge thread, indexing stays on one core and leaves
/// the other to the extraction worker (notes/index.md §2, "Peak RSS").
pub const WRITER_MEMORY_BYTES: usize = 48 << 20;

/// How long [`Chunks::writer`] waits for a busy lock.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Clone, Copy)]
pub struct Fields {
    pub file: Field,
    pub path: Field,
    pub page: Field,
    pub line: Field,
    pub chunk: Field,
    pub generation: Field,
    pub text: Field,
    pub trigrams: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default().set_tokenizer("default").set_index_option(IndexRecordOption::WithFreqs),
        )
        .set_stored();
    let fields = Fields {
        file: b.add_u64_field("file", INDEXED | FAST | STORED),
        path: b.add_text_field("path", STORED),
        page: b.add_u64_field("page", STORED),
        line: b.add_u64_field("line", STORED),
        chunk: b.add_u64_field("chunk", STORED),
        generation: b.add_u64_field("gen", INDEXED | FAST | STORED),
        text: b.add_text_field("text", text),
        // Doc ids only, and no field norms: nothing scores on it.
        trigrams: b.add_u64_field("tri", NumericOptions::default().set_indexed()),
    };
    (b.build(), fields)
}

/// One chunk as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub file: u64,
    pub path: String,
    pub page: u32,
    pub line: usize,
    pub chunk: u32,
    pub generation: u64,
    pub text: String,
}

/// Splits a page's text into chunks of whole lines of at most `max` bytes: (offset, len).
pub fn split(text: &str, max: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let rest = &text[start..];
        // Searched as bytes: `max` may fall inside a character, a `\n` never does.
        let mut end = match rest.len() <= max {
            true => rest.len(),
            false => rest.as_bytes()[..max].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1),
        };
        if end == 0 {
            // One line longer than a chunk: it is a chunk of its own.
            end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        }
        out.push((start, end));
        start += end;
    }
    out
}

/// A trigram as a term of the `tri` field: its three bytes, ASCII-lowercased, big-endian.
pub fn trigram(t: &[u8]) -> u64 {
    (u64::from(t[0].to_ascii_lowercase()) << 16)
        | (u64::from(t[1].to_ascii_lowercase()) << 8)
        | u64::from(t[2].to_ascii_lowercase())
}

thread_local! {
    /// One bit per possible trigram (2 MiB): dedups a chunk's trigrams in one pass, cleared by
    /// the list of those set rather than all of it.
    static SEEN: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The distinct trigrams of `text` ([`trigram`]), in order of first appearance. Trigrams that
/// hold a `\n` are left out: no `grep` match spans lines, so no literal asked for holds one.
pub fn trigrams(text: &[u8]) -> Vec<u64> {
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        if seen.is_empty() {
            seen.resize(1 << 18, 0);
        }
        let mut out = Vec::new();
        for w in text.windows(3) {
            if w.contains(&b'\n') {
                continue;
            }
            let t = trigram(w);
            let (word, bit) = ((t >> 6) as usize, 1u64 << (t & 63));
            if seen[word] & bit == 0 {
                seen[word] |= bit;
                out.push(t);
            }
        }
        for &t in &out {
            seen[(t >> 6) as usize] = 0;
        }
        out
    })
}

/// A collection's tantivy index.
pub struct Chunks {
    index: Index,
    fields: Fields,
    dir: PathBuf,
}

fn index_error(dir: &Path, e: impl std::fmt::Display) -> Error {
    Error::Index { path: dir.into(), message: e.to_string() }
}

impl Chunks {
    /// Opens the index in `dir`, creating it when there is none. An index of another
    /// [`INDEX_VERSION`] is [`Error::Outdated`] (its collection's name left for the caller).
    pub fn open(dir: &Path) -> Result<Chunks> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.into(), source })?;
        let (schema, fields) = schema();
        let directory = MmapDirectory::open(dir).map_err(|e| index_error(dir, e))?;
        let exists = Index::exists(&directory).map_err(|e| index_error(dir, e))?;
        let index = if exists {
            let index = Index::open(directory).map_err(|e| index_error(dir, e))?;
            let found = index
                .load_metas()
                .map_err(|e| index_error(dir, e))?
                .payload
                .as_deref()
                .and_then(parse_payload)
                .map(|p| p.1);
            // Version 1 wrote no version into its payload; its schema lacks `tri`.
            if index.schema() != schema || found.is_some_and(|v| v != INDEX_VERSION) {
                return Err(Error::Outdated {
                    path: dir.into(),
                    found: found.filter(|&v| v != INDEX_VERSION).unwrap_or(1),
                    wanted: INDEX_VERSION,
                    collection: String::new(),
                });
            }
            index
        } else {
            Index::create(directory, schema, tantivy::IndexSettings::default()).map_err(|e| index_error(dir, e))?
        };
        Ok(Chunks { index, fields, dir: dir.into() })
    }

    /// [`Chunks::open`], except that an outdated index is emptied and created anew with this
    /// schema (returning `true`): the caller reads every file again. Taking the old index's
    /// writer first refuses to do so while another process updates it ([`Error::Locked`]).
    pub fn open_for_update(dir: &Path) -> Result<(Chunks, bool)> {
        match Chunks::open(dir) {
            Err(Error::Outdated { .. }) => {
                {
                    let old = Index::open_in_dir(dir).map_err(|e| index_error(dir, e))?;
                    let _writer = lock_writer(&old, dir)?;
                    for entry in std::fs::read_dir(dir).map_err(|source| Error::Io { path: dir.into(), source })? {
                        let entry = entry.map_err(|source| Error::Io { path: dir.into(), source })?;
                        let name = entry.file_name();
                        // The lock files stay: the writer above holds one.
                        if name.to_string_lossy().starts_with(".tantivy-") {
                            continue;
                        }
                        std::fs::remove_file(entry.path())
                            .map_err(|source| Error::Io { path: entry.path(), source })?;
                    }
                }
                Ok((Chunks::open(dir)?, true))
            }
            other => other.map(|c| (c, false)),
        }
    }

    /// Takes the writer of whatever index is in `dir`, of any version, only to hold its lock.
    pub fn lock_any(dir: &Path) -> Result<IndexWriter> {
        let index = Index::open_in_dir(dir).map_err(|e| index_error(dir, e))?;
        lock_writer(&index, dir)
    }

    pub fn fields(&self) -> Fields {
        self.fields
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bounded writer: one indexing thread, [`WRITER_MEMORY_BYTES`], one merge thread.
    /// Fails with [`Error::Locked`] while another process holds it.
    ///
    /// A busy lock is retried for [`LOCK_WAIT`]: the lock is an `flock`, and a process killed
    /// while it was starting a worker leaves a child that holds a copy of the descriptor until
    /// it reaches `exec` (the torture test saw this under load, right after `kill -9`).
    pub fn writer(&self) -> Result<IndexWriter> {
        lock_writer(&self.index, &self.dir)
    }

    /// The generation of the last commit (0 before the first), from its payload.
    pub fn committed_generation(&self) -> Result<u64> {
        let metas = self.index.load_metas().map_err(|e| index_error(&self.dir, e))?;
        Ok(metas.payload.as_deref().and_then(parse_payload).map_or(0, |p| p.0))
    }

    /// The schema version of the last commit (`None` before the first).
    pub fn committed_version(&self) -> Result<Option<u64>> {
        let metas = self.index.load_metas().map_err(|e| index_error(&self.dir, e))?;
        Ok(metas.payload.as_deref().and_then(parse_payload).map(|p| p.1))
    }

    /// Commits what `writer` holds as batch `generation`.
    pub fn commit(&self, writer: &mut IndexWriter, generation: u64) -> Result<()> {
        let mut prepared = writer.prepare_commit().map_err(|e| index_error(&self.dir, e))?;
        prepared.set_payload(&payload(generation));
        prepared.commit().map_err(|e| index_error(&self.dir, e))?;
        Ok(())
    }

    /// Adds the chunks of one file's pages to `writer` after dropping its old ones; returns
    /// how many chunks.
    pub fn add_file(
        &self,
        writer: &IndexWriter,
        file: u64,
        path: &str,
        pages: &[crate::extract::Page],
        generation: u64,
    ) -> Result<u64> {
        writer.delete_term(Term::from_field_u64(self.fields.file, file));
        let mut n = 0u64;
        for page in pages {
            let mut line = page.first_line;
            for (start, len) in split(&page.text, CHUNK_BYTES) {
                let text = &page.text[start..start + len];
                let mut doc = TantivyDocument::default();
                doc.add_u64(self.fields.file, file);
                doc.add_text(self.fields.path, path);
                doc.add_u64(self.fields.page, page.number as u64);
                doc.add_u64(self.fields.line, line as u64);
                doc.add_u64(self.fields.chunk, n);
                doc.add_u64(self.fields.generation, generation);
                doc.add_text(self.fields.text, text);
                for t in trigrams(text.as_bytes()) {
                    doc.add_u64(self.fields.trigrams, t);
                }
                writer.add_document(doc).map_err(|e| index_error(&self.dir, e))?;
                line += text.matches('\n').count() + usize::from(!text.ends_with('\n'));
                n += 1;
            }
        }
        Ok(n)
    }

    /// Drops a file's chunks.
    pub fn remove_file(&self, writer: &IndexWriter, file: u64) {
        writer.delete_term(Term::from_field_u64(self.fields.file, file));
    }

    pub fn reader(&self) -> Result<IndexReader> {
        self.index
            .reader_builder()
            .reload_policy(tantivy::ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| index_error(&self.dir, e))
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Bytes of the `tri` field on disk (its postings and terms), from tantivy's space usage:
    /// what the index would weigh without narrowing.
    pub fn trigram_bytes(&self, searcher: &tantivy::Searcher) -> Result<u64> {
        let usage = searcher.space_usage().map_err(|e| index_error(&self.dir, e))?;
        let field = |per: &tantivy::space_usage::PerFieldSpaceUsage| {
            per.fields().filter(|u| u.field_name() == "tri").map(|u| u.total().get_bytes()).sum::<u64>()
        };
        Ok(usage.segments().iter().map(|s| field(s.postings()) + field(s.termdict())).sum())
    }

    /// Every chunk of `file`, in chunk order.
    pub fn file_chunks(&self, searcher: &tantivy::Searcher, file: u64) -> Result<Vec<Chunk>> {
        let q = TermQuery::new(Term::from_field_u64(self.fields.file, file), IndexRecordOption::Basic);
        let addrs = searcher.search(&q, &DocSetCollector).map_err(|e| index_error(&self.dir, e))?;
        let mut out = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let doc: TantivyDocument = searcher.doc(addr).map_err(|e| index_error(&self.dir, e))?;
            out.push(self.chunk_of(&doc));
        }
        out.sort_by_key(|c| c.chunk);
        Ok(out)
    }

    pub fn chunk_of(&self, doc: &TantivyDocument) -> Chunk {
        let f = &self.fields;
        let u = |field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0);
        let s = |field| doc.get_first(field).and_then(|v| v.as_str()).unwrap_or("").to_string();
        Chunk {
            file: u(f.file),
            path: s(f.path),
            page: u(f.page) as u32,
            line: u(f.line) as usize,
            chunk: u(f.chunk) as u32,
            generation: u(f.generation),
            text: s(f.text),
        }
    }
}

fn lock_writer(index: &Index, dir: &Path) -> Result<IndexWriter> {
    let options = tantivy::indexer::IndexWriterOptions::builder()
        .memory_budget_per_thread(WRITER_MEMORY_BYTES)
        .num_worker_threads(1)
        .num_merge_threads(1)
        .build();
    let started = std::time::Instant::now();
    loop {
        match index.writer_with_options(options.clone()) {
            Ok(w) => return Ok(w),
            Err(tantivy::TantivyError::LockFailure(tantivy::directory::error::LockError::LockBusy, _)) => {
                if started.elapsed() >= LOCK_WAIT {
                    return Err(Error::Locked { path: dir.into() });
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(index_error(dir, e)),
        }
    }
}

fn payload(generation: u64) -> String {
    serde_json::json!({ "gen": generation, "version": INDEX_VERSION }).to_string()
}

fn parse_payload(s: &str) -> Option<(u64, u64)> {
    let v: serde_json::Value = serde_json::from_str(s).ok()?;
    Some((v.get("gen")?.as_u64()?, v.get("version").and_then(|v| v.as_u64()).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_whole_lines_and_a_long_line_stays_whole() {
        let text = "aaaa\nbb\ncccccccccc\nd\n";
        let parts: Vec<&str> = split(text, 8).into_iter().map(|(s, l)| &text[s..s + l]).collect();
        assert_eq!(parts, ["aaaa\nbb\n", "cccccccccc\n", "d\n"]);
        assert_eq!(parts.concat(), text);
        let no_newline = "x\nyz";
        let parts: Vec<&str> = split(no_newline, 2).into_iter().map(|(s, l)| &no_newline[s..s + l]).collect();
        assert_eq!(parts, ["x\n", "yz"]);
    }

    #[test]
    fn a_chunk_limit_inside_a_character_cuts_at_the_line_before_it() {
        // Regression: the 64 KiB limit fell inside an em dash of a CUAD contract and panicked.
        let text = "ab\n\u{2014}\u{2014}\n";
        for max in 1..text.len() {
            let parts: Vec<&str> = split(text, max).into_iter().map(|(s, l)| &text[s..s + l]).collect();
            assert_eq!(parts.concat(), text, "max {max}");
            assert!(parts.iter().all(|p| p.ends_with('\n')), "max {max}: {parts:?}");
        }
    }

    #[test]
    fn a_commit_carries_its_generation_and_a_file_is_replaced_not_doubled() {
        let dir = tempfile::tempdir().unwrap();
        let chunks = Chunks::open(dir.path()).unwrap();
        assert_eq!(chunks.committed_generation().unwrap(), 0);
        let mut w = chunks.writer().unwrap();
        let mut page = crate::extract::Page::new(1, "1", "one\ntwo\n");
        page.first_line = 1;
        page.line_count = 2;
        assert_eq!(chunks.add_file(&w, 7, "a.txt", std::slice::from_ref(&page), 1).unwrap(), 1);
        chunks.commit(&mut w, 1).unwrap();
        page.text = "three\n".into();
        chunks.add_file(&w, 7, "a.txt", &[page], 2).unwrap();
        chunks.commit(&mut w, 2).unwrap();
        assert_eq!(chunks.committed_generation().unwrap(), 2);
        let reader = chunks.reader().unwrap();
        let found = chunks.file_chunks(&reader.searcher(), 7).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].text.as_str(), found[0].generation), ("three\n", 2));
    }

    #[test]
    fn a_second_writer_is_told_the_index_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let chunks = Chunks::open(dir.path()).unwrap();
        let _w = chunks.writer().unwrap();
        assert!(matches!(chunks.writer(), Err(Error::Locked { .. })));
    }
}
