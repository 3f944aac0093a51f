//! One [`Corpus`]: what every search in Quarry asks of a set of documents (`grep`, `search`,
//! `read`, `files`, `stats`), with typed hits, over two backends. [`CollectionCorpus`] answers
//! from a collection's tantivy index and catalog; [`MemoryCorpus`] holds the documents in memory,
//! the fallback for a single file or pasted text. The RLM host and `quarry repl --folder` both
//! serve the REPL's document functions from a `Corpus`, so the two behave identically (issue 15,
//! item 7: the REPL matched substrings where the RLM used regexes and BM25).
//!
//! Both backends grep with [`crate::collection::grep`]'s matcher and line searcher (ripgrep's own
//! `grep-regex` and `grep-searcher`), so their lines and match ranges are `rg`'s; globs are
//! `rg -g`'s. `files(glob)` uses `globset` (`*` crosses `/`, as the REPL's `files()` always did).
//! `search` is BM25: [`crate::Bm25`] over line-addressed passages in memory, tantivy's BM25 over
//! the index's chunks with a snippet of each, for a collection.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::collection::grep::{matcher, matching_lines, overrides, passes};
use crate::collection::{CollectionRow, GrepHit, GrepOptions, Library, Status};
use crate::{passages, Bm25, Document, Error, Layout, Result};

/// Characters of one in-memory `search` passage: about a page of prose, the size the `rag`
/// baseline retrieves (and what the RLM's `search` always returned).
pub const PASSAGE_CHARS: usize = 2000;

/// Characters of a collection `search` hit's snippet, the size of a passage in memory.
pub const SNIPPET_CHARS: usize = PASSAGE_CHARS;

/// A page asked for by `read`: its physical number, or what the document calls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRef {
    Number(u32),
    Label(String),
}

impl std::fmt::Display for PageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageRef::Number(n) => write!(f, "{n}"),
            PageRef::Label(l) => write!(f, "{l:?}"),
        }
    }
}

/// One `search` hit, best first.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchHit {
    pub path: String,
    /// The lines the hit covers in the document's text, 1-based, inclusive.
    pub line_start: usize,
    pub line_end: usize,
    /// The page of `line_start` (1-based, physical), its label, and the line within it.
    pub page: u32,
    pub page_label: String,
    pub page_line: usize,
    /// Whether the format has pages ([`crate::Kind::is_paged`]).
    pub paged: bool,
    pub score: f64,
    /// The passage (in memory) or a snippet of the chunk (a collection).
    pub text: String,
}

/// A corpus's counts.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CorpusStats {
    pub files: u64,
    pub pages: u64,
    pub lines: u64,
    pub text_bytes: u64,
}

/// The documents a question is asked of; see the module docs.
pub trait Corpus: Send + Sync {
    /// The lines matching `pattern` (ripgrep's syntax and semantics; `fixed` is `-F`), in the
    /// files passing `glob` (`rg -g`), files in the walk's order, at most `max` (0: all).
    fn grep(
        &self,
        pattern: &str,
        ignore_case: bool,
        fixed: bool,
        glob: Option<&str>,
        max: usize,
    ) -> Result<Vec<GrepHit>>;
    /// The `k` best passages for `query` by BM25.
    fn search(&self, query: &str, k: usize) -> Result<Vec<SearchHit>>;
    /// Lines `start..=end` (1-based) of `path`, or of its page `page` (lines counted within
    /// it); the whole document (or page) without bounds.
    fn read(&self, path: &str, start: Option<usize>, end: Option<usize>, page: Option<&PageRef>) -> Result<String>;
    /// The paths matching `glob` (globset syntax), in the walk's order.
    fn files(&self, glob: &str) -> Result<Vec<String>>;
    fn stats(&self) -> Result<CorpusStats>;
}

fn glob_matcher(glob: &str) -> Result<globset::GlobMatcher> {
    globset::Glob::new(glob)
        .map(|g| g.compile_matcher())
        .map_err(|e| Error::Pattern { pattern: glob.into(), message: e.to_string() })
}

/// The page of `line` in `layout`: (number, label, line within it), or page 1 of an unpaged text.
fn locate(layout: Option<&Layout>, line: usize) -> (u32, String, usize) {
    match layout.and_then(|l| l.locate(line)) {
        Some((p, within)) => (p.number, p.label.clone(), within),
        None => (1, "1".into(), line),
    }
}

/// `read` over one document's text and layout.
fn read_text(
    path: &str,
    text: &str,
    layout: Option<&Layout>,
    start: Option<usize>,
    end: Option<usize>,
    page: Option<&PageRef>,
) -> Result<String> {
    let lines = |first: usize, last: usize| -> String {
        if first > last {
            return String::new();
        }
        text.lines().skip(first - 1).take((last - first).saturating_add(1)).collect::<Vec<_>>().join("\n")
    };
    let Some(page) = page else {
        if start.is_none() && end.is_none() {
            return Ok(text.to_string());
        }
        return Ok(lines(start.unwrap_or(1).max(1), end.unwrap_or(usize::MAX)));
    };
    let Some(layout) = layout.filter(|l| l.is_paged()) else {
        if *page != PageRef::Number(1) {
            return Err(Error::NoPage {
                path: path.into(),
                page: page.to_string(),
                detail: "these documents are read as plain text, one page each".into(),
            });
        }
        return read_text(path, text, None, start, end, None);
    };
    let span = match page {
        PageRef::Number(n) => layout.page(*n),
        PageRef::Label(l) => layout.find_page(l),
    }
    .ok_or_else(|| {
        let labels: Vec<&str> = layout.pages.iter().take(8).map(|p| p.label.as_str()).collect();
        Error::NoPage {
            path: path.into(),
            page: page.to_string(),
            detail: format!(
                "its {} {}s are numbered 1 to {} (labels {}{})",
                layout.pages.len(),
                layout.format.unit(),
                layout.pages.len(),
                labels.join(", "),
                if layout.pages.len() > 8 { ", ..." } else { "" }
            ),
        }
    })?;
    if span.line_count == 0 {
        return Ok(String::new());
    }
    let first = span.first_line + start.unwrap_or(1).max(1) - 1;
    let last = span.first_line + end.unwrap_or(span.line_count).min(span.line_count) - 1;
    Ok(lines(first, last))
}

/// Documents held in memory: a single file, pasted text, or a folder read without an index.
pub struct MemoryCorpus {
    root: PathBuf,
    documents: Vec<(Document, Layout)>,
    bm25: OnceLock<Bm25>,
}

impl MemoryCorpus {
    /// `documents` in the order `grep` and `files` give them; `root` anchors `rg -g` globs.
    pub fn new(root: impl Into<PathBuf>, documents: Vec<(Document, Layout)>) -> MemoryCorpus {
        MemoryCorpus { root: root.into(), documents, bm25: OnceLock::new() }
    }

    /// A folder's documents and layouts.
    pub fn of_folder(folder: &crate::Folder) -> MemoryCorpus {
        let parts = folder.entries().map(|(d, l)| (d.clone(), l.clone())).collect();
        MemoryCorpus::new(folder.root(), parts)
    }

    /// The folder the paths are relative to (empty for pasted text).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn document(&self, path: &str) -> Result<&(Document, Layout)> {
        self.documents.iter().find(|(d, _)| d.path == path).ok_or_else(|| Error::NoDocument { path: path.into() })
    }
}

impl Corpus for MemoryCorpus {
    fn grep(
        &self,
        pattern: &str,
        ignore_case: bool,
        fixed: bool,
        glob: Option<&str>,
        max: usize,
    ) -> Result<Vec<GrepHit>> {
        let matcher = matcher(pattern, ignore_case, fixed)?;
        let globs: Vec<String> = glob.into_iter().map(String::from).collect();
        let overrides = overrides(&self.root, &globs)?;
        let mut searcher = grep_searcher::SearcherBuilder::new().line_number(true).build();
        let mut hits = Vec::new();
        for (doc, layout) in &self.documents {
            if !passes(&overrides, &self.root, &doc.path) {
                continue;
            }
            for (line, text, ranges) in matching_lines(&mut searcher, &matcher, &doc.text)? {
                let (page, page_label, page_line) = locate(Some(layout), line);
                hits.push(GrepHit {
                    path: doc.path.clone(),
                    page,
                    page_label,
                    line,
                    page_line,
                    paged: layout.is_paged(),
                    text,
                    ranges,
                });
                if max > 0 && hits.len() >= max {
                    return Ok(hits);
                }
            }
        }
        Ok(hits)
    }

    fn search(&self, query: &str, k: usize) -> Result<Vec<SearchHit>> {
        let index = self.bm25.get_or_init(|| {
            let docs: Vec<Document> = self.documents.iter().map(|(d, _)| d.clone()).collect();
            Bm25::new(passages(&docs, PASSAGE_CHARS))
        });
        Ok(index
            .search(query, k)
            .into_iter()
            .map(|(score, p)| {
                let layout = self.documents.iter().find(|(d, _)| d.path == p.path).map(|(_, l)| l);
                let (page, page_label, page_line) = locate(layout, p.line_start);
                SearchHit {
                    path: p.path.clone(),
                    line_start: p.line_start,
                    line_end: p.line_end,
                    page,
                    page_label,
                    page_line,
                    paged: layout.is_some_and(Layout::is_paged),
                    score,
                    text: p.text.clone(),
                }
            })
            .collect())
    }

    fn read(&self, path: &str, start: Option<usize>, end: Option<usize>, page: Option<&PageRef>) -> Result<String> {
        let (doc, layout) = self.document(path)?;
        read_text(path, &doc.text, Some(layout), start, end, page)
    }

    fn files(&self, glob: &str) -> Result<Vec<String>> {
        let m = glob_matcher(glob)?;
        Ok(self.documents.iter().map(|(d, _)| d.path.clone()).filter(|p| m.is_match(p)).collect())
    }

    fn stats(&self) -> Result<CorpusStats> {
        Ok(CorpusStats {
            files: self.documents.len() as u64,
            pages: self.documents.iter().map(|(_, l)| l.pages.len().max(1) as u64).sum(),
            lines: self.documents.iter().map(|(_, l)| l.line_count() as u64).sum(),
            text_bytes: self.documents.iter().map(|(d, _)| d.text.len() as u64).sum(),
        })
    }
}

/// A collection, answered from its index and catalog without reading a file.
pub struct CollectionCorpus {
    /// The catalog's SQLite connection is not `Sync`: one call at a time uses it.
    library: Mutex<Library>,
    collection: CollectionRow,
}

impl CollectionCorpus {
    pub fn new(library: Library, collection: CollectionRow) -> CollectionCorpus {
        CollectionCorpus { library: Mutex::new(library), collection }
    }

    pub fn collection(&self) -> &CollectionRow {
        &self.collection
    }

    fn library(&self) -> std::sync::MutexGuard<'_, Library> {
        self.library.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The indexed files in the walk's order (names sorted within each folder).
    fn indexed(&self, library: &Library) -> Result<Vec<(i64, String)>> {
        let mut files = library.catalog().indexed_paths(self.collection.id)?;
        files.sort_by(|a, b| a.1.split('/').cmp(b.1.split('/')));
        Ok(files)
    }
}

impl Corpus for CollectionCorpus {
    fn grep(
        &self,
        pattern: &str,
        ignore_case: bool,
        fixed: bool,
        glob: Option<&str>,
        max: usize,
    ) -> Result<Vec<GrepHit>> {
        let options = GrepOptions {
            ignore_case,
            fixed,
            globs: glob.into_iter().map(String::from).collect(),
            max,
            ..Default::default()
        };
        Ok(self.library().grep(&self.collection, pattern, &options)?.hits)
    }

    /// tantivy's BM25 over the chunks' words (any of the query's words may match), with the
    /// chunk's best fragment as the hit's text.
    fn search(&self, query: &str, k: usize) -> Result<Vec<SearchHit>> {
        use tantivy::collector::TopDocs;
        use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
        use tantivy::schema::{IndexRecordOption, Value};
        use tantivy::tokenizer::TokenStream;
        let library = self.library();
        let open = library.open_index(&self.collection)?;
        let fields = open.chunks.fields();
        let index_error =
            |e: &dyn std::fmt::Display| Error::Index { path: open.chunks.dir().into(), message: e.to_string() };
        // The words as the index's tokenizer cut them; the query parser's syntax would make a
        // model's `"` or `:` an error, and the text has no positions for phrases.
        let mut tokenizer = open.chunks.index().tokenizer_for_field(fields.text).map_err(|e| index_error(&e))?;
        let mut terms = Vec::new();
        let mut stream = tokenizer.token_stream(query);
        while stream.advance() {
            let term = tantivy::Term::from_field_text(fields.text, &stream.token().text);
            if !terms.contains(&term) {
                terms.push(term);
            }
        }
        if terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let query: Box<dyn Query> = Box::new(BooleanQuery::new(
            terms
                .into_iter()
                .map(|t| (Occur::Should, Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs)) as Box<dyn Query>))
                .collect(),
        ));
        let searcher = open.reader.searcher();
        let top = searcher.search(&*query, &TopDocs::with_limit(k).order_by_score()).map_err(|e| index_error(&e))?;
        let mut snippets =
            tantivy::snippet::SnippetGenerator::create(&searcher, &*query, fields.text).map_err(|e| index_error(&e))?;
        snippets.set_max_num_chars(SNIPPET_CHARS);
        let mut hits = Vec::new();
        for (score, addr) in top {
            let doc: tantivy::TantivyDocument = searcher.doc(addr).map_err(|e| index_error(&e))?;
            let chunk = open.chunks.chunk_of(&doc);
            let text = doc.get_first(fields.text).and_then(|v| v.as_str()).unwrap_or("");
            let lines = text.lines().count().max(1);
            let layout = library.catalog().layout(chunk.file as i64)?;
            let (page, page_label, page_line) = locate(layout.as_ref(), chunk.line);
            hits.push(SearchHit {
                path: chunk.path,
                line_start: chunk.line,
                line_end: chunk.line + lines - 1,
                page,
                page_label,
                page_line,
                paged: layout.as_ref().is_some_and(Layout::is_paged),
                score: f64::from(score),
                text: snippets.snippet_from_doc(&doc).fragment().to_string(),
            });
        }
        Ok(hits)
    }

    fn read(&self, path: &str, start: Option<usize>, end: Option<usize>, page: Option<&PageRef>) -> Result<String> {
        let library = self.library();
        let row = library
            .catalog()
            .file(self.collection.id, path)?
            .filter(|f| f.status == Status::Indexed)
            .ok_or_else(|| Error::NoDocument { path: path.into() })?;
        let open = library.open_index(&self.collection)?;
        let searcher = open.reader.searcher();
        let text: String = open.chunks.file_chunks(&searcher, row.id as u64)?.into_iter().map(|c| c.text).collect();
        let layout = row.parsed_layout();
        read_text(path, &text, layout.as_ref(), start, end, page)
    }

    fn files(&self, glob: &str) -> Result<Vec<String>> {
        let m = glob_matcher(glob)?;
        let library = self.library();
        Ok(self.indexed(&library)?.into_iter().map(|(_, p)| p).filter(|p| m.is_match(p)).collect())
    }

    fn stats(&self) -> Result<CorpusStats> {
        let library = self.library();
        let files = library.catalog().files(self.collection.id)?;
        let mut stats = CorpusStats::default();
        for f in files.iter().filter(|f| f.status == Status::Indexed) {
            stats.files += 1;
            stats.pages += f.pages.max(1);
            stats.text_bytes += f.text_bytes;
            stats.lines += f.parsed_layout().map_or(0, |l| l.line_count() as u64);
        }
        Ok(stats)
    }
}
