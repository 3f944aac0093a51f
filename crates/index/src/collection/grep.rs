//! `grep` over a collection's stored text with ripgrep's own crates: `grep-regex` builds the
//! matcher as `rg` does (line terminator `\n`, `-i`, `-F`) and `grep-searcher` finds the lines,
//! so lines and match ranges are `rg`'s on the same text by construction (notes/index.md §3.2,
//! step 4). `-g` globs are ripgrep's overrides (`ignore::overrides`), directories included.
//!
//! This is the full-scan path: every chunk of every file (in the walk's order) is searched. A
//! chunk holds whole lines, so no match is lost at a chunk's edge. Narrowing the candidate
//! chunks through an n-gram index first (the "far faster than ripgrep") is not built
//! yet; [`GrepReport::path`] says which path a search took.

use std::path::Path;

use grep_matcher::Matcher;
use grep_regex::RegexMatcherBuilder;
use grep_searcher::{sinks, SearcherBuilder};

use super::{Chunks, CollectionRow, Library, Status};
use crate::{Error, Layout, Result};

/// How to grep.
#[derive(Debug, Clone, Default)]
pub struct GrepOptions {
    pub ignore_case: bool,
    /// The pattern is a literal string (`rg -F`).
    pub fixed: bool,
    /// `rg -g` globs: `*.pdf`, `!drafts/**`.
    pub globs: Vec<String>,
    /// Stop after this many matching lines (0: no limit).
    pub max: usize,
}

/// One matching line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GrepHit {
    pub path: String,
    /// The page (1-based, physical) and what the document calls it.
    pub page: u32,
    pub page_label: String,
    /// The line in the document's text (what `rg` prints on a mirror of it), and within the page.
    pub line: usize,
    pub page_line: usize,
    /// Whether the format has pages ([`crate::Kind::is_paged`]): citations then name them.
    pub paged: bool,
    /// The line, without its `\n`.
    pub text: String,
    /// Byte ranges of the matches within `text`.
    pub ranges: Vec<[usize; 2]>,
}

/// What a search found, and how.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GrepReport {
    pub hits: Vec<GrepHit>,
    /// `"scan"`: every chunk was searched.
    pub path: &'static str,
    pub files: usize,
    pub chunks: usize,
    /// Stopped at `max`.
    pub truncated: bool,
}

/// Whether `path` (relative) passes the `-g` globs, its folders included, as `rg` walks.
fn passes(overrides: &ignore::overrides::Override, root: &Path, path: &str) -> bool {
    if overrides.is_empty() {
        return true;
    }
    let mut dir = root.to_path_buf();
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        dir.push(part);
        if overrides.matched(&dir, true).is_ignore() {
            return false;
        }
    }
    !overrides.matched(root.join(path), false).is_ignore()
}

impl Library {
    /// Searches a collection's text for `pattern`; see the module docs.
    pub fn grep(&self, collection: &CollectionRow, pattern: &str, options: &GrepOptions) -> Result<GrepReport> {
        let matcher = RegexMatcherBuilder::new()
            .case_insensitive(options.ignore_case)
            .fixed_strings(options.fixed)
            .line_terminator(Some(b'\n'))
            .build(pattern)
            .map_err(|e| Error::Pattern { pattern: pattern.into(), message: e.to_string() })?;
        let mut globs = ignore::overrides::OverrideBuilder::new(&collection.root);
        for g in &options.globs {
            globs.add(g).map_err(|e| Error::Pattern { pattern: g.clone(), message: e.to_string() })?;
        }
        let overrides =
            globs.build().map_err(|e| Error::Pattern { pattern: options.globs.join(" "), message: e.to_string() })?;
        let chunks = Chunks::open(&self.index_dir(collection.id))?;
        let reader = chunks.reader()?;
        let searcher = reader.searcher();
        let mut files = self.catalog.files(collection.id)?;
        files.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
        let mut report = GrepReport { hits: Vec::new(), path: "scan", files: 0, chunks: 0, truncated: false };
        let mut lines = SearcherBuilder::new().line_number(true).build();
        'files: for f in files.iter().filter(|f| f.status == Status::Indexed) {
            if !passes(&overrides, &collection.root, &f.path) {
                continue;
            }
            report.files += 1;
            let layout: Option<Layout> = f.layout.as_deref().and_then(|l| serde_json::from_str(l).ok());
            for chunk in chunks.file_chunks(&searcher, f.id as u64)? {
                report.chunks += 1;
                let mut found = Vec::new();
                lines
                    .search_slice(
                        &matcher,
                        chunk.text.as_bytes(),
                        sinks::UTF8(|n, line| {
                            found.push((n as usize, line.strip_suffix('\n').unwrap_or(line).to_string()));
                            Ok(true)
                        }),
                    )
                    .map_err(|e| Error::Index { path: chunks.dir().into(), message: e.to_string() })?;
                for (n, text) in found {
                    let line = chunk.line + n - 1;
                    let mut ranges = Vec::new();
                    let _ = matcher.find_iter(text.as_bytes(), |m| {
                        ranges.push([m.start(), m.end()]);
                        true
                    });
                    let (page_label, page_line) = match layout.as_ref().and_then(|l| l.locate(line)) {
                        Some((p, within)) => (p.label.clone(), within),
                        None => (chunk.page.to_string(), line),
                    };
                    report.hits.push(GrepHit {
                        path: f.path.clone(),
                        page: chunk.page,
                        page_label,
                        line,
                        page_line,
                        paged: layout.as_ref().is_some_and(Layout::is_paged),
                        text,
                        ranges,
                    });
                    if options.max > 0 && report.hits.len() >= options.max {
                        report.truncated = true;
                        break 'files;
                    }
                }
            }
        }
        Ok(report)
    }
}
