//! `grep` over a collection's stored text with ripgrep's own crates: `grep-regex` builds the
//! matcher as `rg` does (line terminator `\n`, `-i`, `-F`) and `grep-searcher` finds the lines,
//! so lines and match ranges are `rg`'s on the same text by construction (notes/index.md §3.2,
//! step 4). `-g` globs are ripgrep's overrides (`ignore::overrides`), directories included.
//!
//! **Narrowing.** Before anything is searched, the pattern's literals (`regex-syntax`'s
//! [`Extractor`], prefix and suffix, at every level of the pattern: a concatenation needs each
//! of its parts, an alternation one of its branches) become a tantivy query over each chunk's
//! trigrams (the `tri` field, [`super::chunks::trigrams`]): AND within a literal, OR across the
//! literals a match may begin or end with. Only the chunks it returns are searched. Both sides
//! lowercase ASCII only, a byte-local fold, so a chunk holding a match always holds its
//! literals' folded trigrams: the query can return too many chunks, never too few, and the
//! matcher decides. Case variants outside ASCII (`(?i)k` is also the Kelvin sign) stay variants
//! of the literal. A pattern with no literal of three bytes (`\d{3}-\d{4}`), or one whose
//! candidates are more than [`NARROW_MAX_FRACTION`] of the chunks, is searched by a scan of
//! every chunk instead: the query would save nothing.
//! [`GrepReport::path`] says which path a search took.
//!
//! Why: warm `rg -j2` over a mirror of ../shared/corpora's text (56 MB) takes 15–45 ms for any
//! pattern, because it reads every byte; here a grep's time is mostly decompressing the chunks
//! it searches (perf: 40–50% in tantivy's LZ4 decompressor), so the win is in not touching
//! them. On 2026-12-02 (`quarry bench index --grep-runs 5`, 2 loaded cores) the 11 of the 50
//! [`FIXED_PATTERNS`] with at most 1% of the 7,831 chunks as candidates took 0.4–3.7 ms against
//! rg's 20–30 ms (median 25x); a pattern with a fifth of the chunks as candidates is about rg's
//! speed, and a scan of everything up to 2.2x rg's time (docs/benchmarks.md has the table). The
//! 1,050-pattern test (`tests/it/grep.rs`) checks both paths against `rg -uuu --sort path --json`.
//!
//! Either way the files are searched in the walk's order, two at a time (as `rg -j2`), and the
//! hits put back in that order, lines in order within a file, so `max` cuts where a scan would.
//! A chunk holds whole lines, so no match is lost at a chunk's edge.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use grep_matcher::Matcher;
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{sinks, SearcherBuilder};
use regex_syntax::hir::literal::{ExtractKind, Extractor, Seq};
use regex_syntax::hir::{self, Class, Hir, HirKind};
use tantivy::collector::DocSetCollector;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{DocAddress, TantivyDocument, Term};

use super::chunks::trigram;
use super::{Chunks, CollectionRow, Library};
use crate::{Error, Layout, Result};

/// Past this fraction of the index's chunks as candidates, every chunk is scanned instead.
/// notes/index.md §3.2 suggests 5–10%, and the design first chose 30%, on the grounds that a
/// sequential scan reads faster than fetching candidates. Here both paths fetch chunks the same
/// way (by address, file by file), so a candidate costs what a scanned chunk costs and the
/// query only saves work: on ../shared/corpora with 16 KiB chunks, `Effective Date` (33% of
/// the chunks as candidates) took 62 ms narrowed and 113 ms scanned (`sole discretion`, 17%:
/// 35 against 106 ms). Only a query that keeps nearly everything is not worth asking.
pub const NARROW_MAX_FRACTION: f64 = 0.90;

/// Threads confirming candidates, as `rg -j2` on the 2 cores the issue targets.
pub const GREP_THREADS: usize = 2;

/// Which path a search may take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GrepPath {
    /// Narrowed when the pattern has literals and they are selective, else a scan.
    #[default]
    Auto,
    /// Every chunk.
    Scan,
    /// Narrowed whenever the pattern has literals, however many candidates (for tests).
    Narrowed,
}

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
    pub path: GrepPath,
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
    /// `"narrowed"`: only the trigram query's candidates were searched; `"scan"`: every chunk.
    pub path: &'static str,
    /// Files and chunks searched.
    pub files: usize,
    pub chunks: usize,
    /// Chunks the trigram query returned (every chunk on a scan), and the index's chunks.
    pub candidates: usize,
    pub total_chunks: usize,
    /// Stopped at `max`.
    pub truncated: bool,
}

/// One of [`FIXED_PATTERNS`]: a pattern and its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FixedPattern {
    pub pattern: &'static str,
    pub ignore_case: bool,
    pub fixed: bool,
}

const fn re(pattern: &'static str) -> FixedPattern {
    FixedPattern { pattern, ignore_case: false, fixed: false }
}

const fn re_i(pattern: &'static str) -> FixedPattern {
    FixedPattern { pattern, ignore_case: true, fixed: false }
}

const fn fixed(pattern: &'static str) -> FixedPattern {
    FixedPattern { pattern, ignore_case: false, fixed: true }
}

/// The issue's 50 patterns of an analyst's greps over contracts, laws and speeches
/// (../shared/corpora): identifiers, error strings, phrases, alternations, character classes,
/// and patterns with no usable literal. `quarry bench index` times them against `rg` and the
/// equivalence test (`tests/it/grep.rs`) runs them beside its generated ones.
pub const FIXED_PATTERNS: [FixedPattern; 50] = [
    // Identifiers and names.
    re("GDPR"),
    re("Nantz"),
    re("Article 17"),
    re("CUAD"),
    re(r"Exhibit 10\.\d+"),
    re("NON-COMPETE"),
    re("Gettysburg"),
    re("IntegratedPros"),
    re("zzqxj"),
    re(r"Inc\."),
    // Error strings.
    re("not found"),
    re("Permission denied"),
    re("failed to"),
    fixed("Error: file not found (code 404)"),
    re_i("invalid argument"),
    re("No such file or directory"),
    // Phrases.
    re("Effective Date"),
    re("governing law"),
    re_i("force majeure"),
    re("We the People"),
    re("Fellow-Citizens"),
    re("right to erasure"),
    re("data protection officer"),
    re("supervisory authority"),
    re("Confidential Information"),
    re("termination for convenience"),
    re_i("in witness whereof"),
    re("Most Favored Nation"),
    re("sole discretion"),
    re("liquidated damages"),
    re("Universal Declaration"),
    fixed("Section 2.1 (a)"),
    re("New York"),
    re_i("quarterly"),
    // Alternations.
    re("indemnif(y|ication)|hold harmless"),
    re("Washington|Lincoln|Jefferson"),
    re_i("what (is|are) the"),
    re("(?:Subject|From): "),
    re(r"\b(liberty|freedom)\b"),
    // Character classes.
    re("[0-9]{4}-[0-9]{2}-[0-9]{2}"),
    re(r"\$[0-9,]+\.[0-9]{2}"),
    re(r"@[a-z]+\.com"),
    re("[A-Z]{3,}_[0-9]+"),
    re(r"\b[A-Z][a-z]+ Corporation\b"),
    re("Schedule [A-Z]"),
    re(r"\w+ization\b"),
    re_i("confidential"),
    re("[aeiou]{4}"),
    // No literal of three bytes: a scan.
    re(r"\d{3}-\d{3}-\d{4}"),
    re(r"^\s*\d+\.\d+\s"),
];

/// Whether `path` (relative) passes the `-g` globs, its folders included, as `rg` walks.
pub(crate) fn passes(overrides: &ignore::overrides::Override, root: &Path, path: &str) -> bool {
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

/// `rg`'s matcher for `pattern`: line terminator `\n`, `-i`, `-F`.
pub(crate) fn matcher(pattern: &str, ignore_case: bool, fixed: bool) -> Result<RegexMatcher> {
    RegexMatcherBuilder::new()
        .case_insensitive(ignore_case)
        .fixed_strings(fixed)
        .line_terminator(Some(b'\n'))
        .build(pattern)
        .map_err(|e| Error::Pattern { pattern: pattern.into(), message: e.to_string() })
}

/// `rg -g` globs relative to `root`.
pub(crate) fn overrides(root: &Path, globs: &[String]) -> Result<ignore::overrides::Override> {
    let mut builder = ignore::overrides::OverrideBuilder::new(root);
    for g in globs {
        builder.add(g).map_err(|e| Error::Pattern { pattern: g.clone(), message: e.to_string() })?;
    }
    builder.build().map_err(|e| Error::Pattern { pattern: globs.join(" "), message: e.to_string() })
}

/// A matching line: its number (from 1), its text without the `\n`, its match ranges.
pub(crate) type MatchingLine = (usize, String, Vec<[usize; 2]>);

/// The matching lines of `text` (one document or one chunk, whole lines), numbered from 1, each
/// with its match ranges: what `rg` prints for it.
pub(crate) fn matching_lines(
    lines: &mut grep_searcher::Searcher,
    matcher: &RegexMatcher,
    text: &str,
) -> Result<Vec<MatchingLine>> {
    let mut found = Vec::new();
    lines
        .search_slice(
            matcher,
            text.as_bytes(),
            sinks::UTF8(|n, line| {
                found.push((n as usize, line.strip_suffix('\n').unwrap_or(line).to_string()));
                Ok(true)
            }),
        )
        // A slice of a `str` gives the searcher no I/O to fail and no invalid UTF-8.
        .map_err(|e| Error::Pattern { pattern: String::new(), message: format!("searching the text failed: {e}") })?;
    Ok(found
        .into_iter()
        .map(|(n, text)| {
            let mut ranges = Vec::new();
            let _ = matcher.find_iter(text.as_bytes(), |m| {
                ranges.push([m.start(), m.end()]);
                true
            });
            (n, text, ranges)
        })
        .collect())
}

/// Which chunks can hold a match: every chunk, or those holding every trigram of an `And`,
/// any branch of an `Or`. Trigrams are [`trigram`]s of ASCII-lowercased bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Narrowing {
    All,
    Trigram(u64),
    And(Vec<Narrowing>),
    Or(Vec<Narrowing>),
}

/// At most this many trigrams of one literal are asked for (dropping some from an AND only
/// widens it).
const MAX_TRIGRAMS_PER_LITERAL: usize = 24;

impl Narrowing {
    fn and(parts: Vec<Narrowing>) -> Narrowing {
        let mut out: Vec<Narrowing> = Vec::new();
        for p in parts {
            match p {
                Narrowing::All => {}
                Narrowing::And(inner) => {
                    for q in inner {
                        if !out.contains(&q) {
                            out.push(q);
                        }
                    }
                }
                q => {
                    if !out.contains(&q) {
                        out.push(q);
                    }
                }
            }
        }
        match out.len() {
            0 => Narrowing::All,
            1 => out.pop().expect("one"),
            _ => Narrowing::And(out),
        }
    }

    fn or(parts: Vec<Narrowing>) -> Narrowing {
        let mut out: Vec<Narrowing> = Vec::new();
        for p in parts {
            match p {
                Narrowing::All => return Narrowing::All,
                Narrowing::Or(inner) => out.extend(inner),
                q => {
                    if !out.contains(&q) {
                        out.push(q)
                    }
                }
            }
        }
        match out.len() {
            // No branch: an empty alternation. Scanning is always safe.
            0 => Narrowing::All,
            1 => out.pop().expect("one"),
            _ => Narrowing::Or(out),
        }
    }

    /// The trigrams of one literal, all required; `All` when it is shorter than three bytes.
    fn literal(bytes: &[u8]) -> Narrowing {
        let mut seen = Vec::new();
        for w in bytes.windows(3) {
            let t = trigram(w);
            if !seen.contains(&Narrowing::Trigram(t)) {
                seen.push(Narrowing::Trigram(t));
            }
        }
        if seen.len() > MAX_TRIGRAMS_PER_LITERAL {
            // Keep them spread over the literal, first and last included.
            let n = seen.len();
            seen = (0..MAX_TRIGRAMS_PER_LITERAL)
                .map(|i| seen[i * (n - 1) / (MAX_TRIGRAMS_PER_LITERAL - 1)].clone())
                .collect();
        }
        Narrowing::and(seen)
    }

    /// A match begins (or ends) with one of `seq`'s literals, when it is finite.
    fn seq(seq: &Seq) -> Narrowing {
        match seq.literals() {
            Some(lits) if !lits.is_empty() => {
                Narrowing::or(lits.iter().map(|l| Narrowing::literal(l.as_bytes())).collect())
            }
            _ => Narrowing::All,
        }
    }

    fn is_all(&self) -> bool {
        *self == Narrowing::All
    }

    /// The narrowing of a pattern as `grep` matches it: [`Narrowing::All`] when it has no
    /// literal of three bytes, or when it cannot be read as `grep-regex` reads it (its error
    /// is the matcher's to give).
    pub fn of_pattern(pattern: &str, ignore_case: bool, fixed: bool) -> Narrowing {
        if pattern.contains('\n') {
            return Narrowing::All;
        }
        let pattern = match fixed {
            true => regex_syntax::escape(pattern),
            false => pattern.to_string(),
        };
        // grep-regex's own parse (config.rs): utf8 off, Unicode on, no multi-line.
        let parsed = regex_syntax::ast::parse::ParserBuilder::new().nest_limit(250).build().parse(&pattern);
        let Ok(ast) = parsed else { return Narrowing::All };
        let translated = regex_syntax::hir::translate::TranslatorBuilder::new()
            .utf8(false)
            .case_insensitive(ignore_case)
            .unicode(true)
            .build()
            .translate(&pattern, &ast);
        let Ok(hir) = translated else { return Narrowing::All };
        Narrowing::of_hir(&fold(&hir))
    }

    /// Prefix and suffix literals of `h`, and those of its parts: every part of a
    /// concatenation is in a match, one branch of an alternation.
    fn of_hir(h: &Hir) -> Narrowing {
        let mut parts = Vec::new();
        for kind in [ExtractKind::Prefix, ExtractKind::Suffix] {
            parts.push(Narrowing::seq(&Extractor::new().kind(kind).extract(h)));
        }
        match h.kind() {
            HirKind::Concat(subs) => parts.extend(subs.iter().map(Narrowing::of_hir)),
            HirKind::Alternation(subs) => parts.push(Narrowing::or(subs.iter().map(Narrowing::of_hir).collect())),
            HirKind::Repetition(r) if r.min >= 1 => parts.push(Narrowing::of_hir(&r.sub)),
            HirKind::Capture(c) => parts.push(Narrowing::of_hir(&c.sub)),
            _ => {}
        }
        Narrowing::and(parts)
    }

    fn query(&self, field: tantivy::schema::Field) -> Box<dyn Query> {
        match self {
            Narrowing::Trigram(t) => {
                Box::new(TermQuery::new(Term::from_field_u64(field, *t), IndexRecordOption::Basic))
            }
            Narrowing::And(v) => Box::new(BooleanQuery::new(v.iter().map(|q| (Occur::Must, q.query(field))).collect())),
            Narrowing::Or(v) => {
                Box::new(BooleanQuery::new(v.iter().map(|q| (Occur::Should, q.query(field))).collect()))
            }
            Narrowing::All => unreachable!("a scan asks no query"),
        }
    }
}

/// Classes of more members than this become "any character" when folded.
const FOLD_CLASS_LIMIT: usize = 32;

/// `h` with ASCII lowercased everywhere, as the index folds the text: every string `h` matches,
/// folded, is matched by `fold(h)`, so `fold(h)`'s literals are in every folded match. A large
/// class becomes any character (any byte), which still matches each folded member.
fn fold(h: &Hir) -> Hir {
    match h.kind() {
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(hir::Literal(bytes)) => Hir::literal(bytes.to_ascii_lowercase()),
        HirKind::Class(Class::Unicode(c)) => {
            let members: usize = c.iter().map(|r| r.end() as usize - r.start() as usize + 1).sum();
            if members > FOLD_CLASS_LIMIT {
                return Hir::dot(hir::Dot::AnyChar);
            }
            let chars = c.iter().flat_map(|r| r.start()..=r.end()).map(|ch| ch.to_ascii_lowercase());
            Hir::class(Class::Unicode(hir::ClassUnicode::new(chars.map(|ch| hir::ClassUnicodeRange::new(ch, ch)))))
        }
        HirKind::Class(Class::Bytes(c)) => {
            let members: usize = c.iter().map(|r| r.end() as usize - r.start() as usize + 1).sum();
            if members > FOLD_CLASS_LIMIT {
                return Hir::dot(hir::Dot::AnyByte);
            }
            let bytes = c.iter().flat_map(|r| r.start()..=r.end()).map(|b| b.to_ascii_lowercase());
            Hir::class(Class::Bytes(hir::ClassBytes::new(bytes.map(|b| hir::ClassBytesRange::new(b, b)))))
        }
        HirKind::Look(look) => Hir::look(*look),
        HirKind::Repetition(r) => {
            Hir::repetition(hir::Repetition { min: r.min, max: r.max, greedy: r.greedy, sub: Box::new(fold(&r.sub)) })
        }
        HirKind::Capture(c) => {
            Hir::capture(hir::Capture { index: c.index, name: c.name.clone(), sub: Box::new(fold(&c.sub)) })
        }
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(fold).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(fold).collect()),
    }
}

/// A matching line before its page is looked up.
struct RawHit {
    page: u32,
    line: usize,
    text: String,
    ranges: Vec<[usize; 2]>,
}

/// Searches one file's chunks (in chunk order) for the matching lines.
fn search_file(
    chunks: &Chunks,
    searcher: &tantivy::Searcher,
    lines: &mut grep_searcher::Searcher,
    matcher: &RegexMatcher,
    addresses: &[DocAddress],
) -> Result<Vec<RawHit>> {
    let index_error = |e: &dyn std::fmt::Display| Error::Index { path: chunks.dir().into(), message: e.to_string() };
    let f = chunks.fields();
    let u = |doc: &TantivyDocument, field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0);
    // (chunk, page, first line, document); the text is searched where it was deserialized.
    let mut docs = Vec::with_capacity(addresses.len());
    for &addr in addresses {
        let doc: TantivyDocument = searcher.doc(addr).map_err(|e| index_error(&e))?;
        docs.push((u(&doc, f.chunk), u(&doc, f.page) as u32, u(&doc, f.line) as usize, doc));
    }
    docs.sort_by_key(|d| d.0);
    let mut out = Vec::new();
    for (_, page, first_line, doc) in &docs {
        let text = doc.get_first(f.text).and_then(|v| v.as_str()).unwrap_or("");
        for (n, text, ranges) in matching_lines(lines, matcher, text)? {
            out.push(RawHit { page: *page, line: first_line + n - 1, text, ranges });
        }
    }
    Ok(out)
}

impl Library {
    /// Searches a collection's text for `pattern`; see the module docs.
    pub fn grep(&self, collection: &CollectionRow, pattern: &str, options: &GrepOptions) -> Result<GrepReport> {
        let matcher = matcher(pattern, options.ignore_case, options.fixed)?;
        let overrides = overrides(&collection.root, &options.globs)?;
        let open = self.open_index(collection)?;
        let chunks = &open.chunks;
        let searcher = open.reader.searcher();
        let index_error =
            |e: &dyn std::fmt::Display| Error::Index { path: chunks.dir().into(), message: e.to_string() };
        let total_chunks = searcher.num_docs() as usize;

        // The candidate chunks, by file.
        let narrowing = match options.path {
            GrepPath::Scan => Narrowing::All,
            _ => Narrowing::of_pattern(pattern, options.ignore_case, options.fixed),
        };
        let mut candidates: Option<Vec<DocAddress>> = None;
        if !narrowing.is_all() {
            let query = narrowing.query(chunks.fields().trigrams);
            let found = searcher.search(&*query, &DocSetCollector).map_err(|e| index_error(&e))?;
            let selective = found.len() as f64 <= NARROW_MAX_FRACTION * total_chunks as f64;
            if options.path == GrepPath::Narrowed || selective {
                candidates = Some(found.into_iter().collect());
            }
        }
        let mut report = GrepReport {
            hits: Vec::new(),
            path: if candidates.is_some() { "narrowed" } else { "scan" },
            files: 0,
            chunks: 0,
            candidates: candidates.as_ref().map_or(total_chunks, Vec::len),
            total_chunks,
            truncated: false,
        };
        let addresses = match candidates {
            Some(found) => found,
            None => {
                let mut all = Vec::with_capacity(total_chunks);
                for (ord, segment) in searcher.segment_readers().iter().enumerate() {
                    all.extend(segment.doc_ids_alive().map(|doc| DocAddress::new(ord as u32, doc)));
                }
                all
            }
        };
        let mut by_file: HashMap<u64, Vec<DocAddress>> = HashMap::new();
        let mut columns = HashMap::new();
        for addr in addresses {
            let column = match columns.entry(addr.segment_ord) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(
                    searcher.segment_reader(addr.segment_ord).fast_fields().u64("file").map_err(|e| index_error(&e))?,
                ),
            };
            if let Some(file) = column.first(addr.doc_id) {
                by_file.entry(file).or_default().push(addr);
            }
        }

        // The files to search, in the walk's order (names sorted within each folder).
        let mut files = self.catalog.indexed_paths(collection.id)?;
        files.retain(|(id, path)| by_file.contains_key(&(*id as u64)) && passes(&overrides, &collection.root, path));
        files.sort_by(|a, b| a.1.split('/').cmp(b.1.split('/')));

        // Two threads take files in order; once `max` lines are found no file is taken, and the
        // files taken so far are a prefix of the order, so the first `max` hits are a scan's.
        let next = AtomicUsize::new(0);
        let found = AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, Result<Vec<RawHit>>)>> = Mutex::new(Vec::new());
        let searched_chunks = AtomicUsize::new(0);
        let work = || {
            let mut lines = SearcherBuilder::new().line_number(true).build();
            loop {
                if options.max > 0 && found.load(Ordering::SeqCst) >= options.max {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((id, _)) = files.get(i) else { break };
                let addrs = &by_file[&(*id as u64)];
                searched_chunks.fetch_add(addrs.len(), Ordering::SeqCst);
                let r = search_file(chunks, &searcher, &mut lines, &matcher, addrs);
                if let Ok(hits) = &r {
                    found.fetch_add(hits.len(), Ordering::SeqCst);
                }
                results.lock().expect("no thread panics holding it").push((i, r));
            }
        };
        let total: usize = files.iter().map(|(id, _)| by_file[&(*id as u64)].len()).sum();
        if GREP_THREADS > 1 && files.len() > 1 && total > 4 {
            std::thread::scope(|s| {
                for _ in 1..GREP_THREADS {
                    s.spawn(work);
                }
                work();
            });
        } else {
            work();
        }
        let mut results = results.into_inner().expect("no thread panicked");
        results.sort_by_key(|(i, _)| *i);
        report.chunks = searched_chunks.into_inner();
        report.files = results.len();
        'files: for (i, r) in results {
            let raw = r?;
            if raw.is_empty() {
                continue;
            }
            let (id, path) = &files[i];
            let layout = self.catalog.layout(*id)?;
            for h in raw {
                let (page_label, page_line) = match layout.as_ref().and_then(|l| l.locate(h.line)) {
                    Some((p, within)) => (p.label.clone(), within),
                    None => (h.page.to_string(), h.line),
                };
                report.hits.push(GrepHit {
                    path: path.clone(),
                    page: h.page,
                    page_label,
                    line: h.line,
                    page_line,
                    paged: layout.as_ref().is_some_and(Layout::is_paged),
                    text: h.text,
                    ranges: h.ranges,
                });
                if options.max > 0 && report.hits.len() >= options.max {
                    report.truncated = true;
                    break 'files;
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigrams_of(s: &str) -> Vec<u64> {
        s.as_bytes().windows(3).map(trigram).collect()
    }

    /// Whether `n` lets through a chunk whose folded trigrams are `have`.
    fn admits(n: &Narrowing, have: &[u64]) -> bool {
        match n {
            Narrowing::All => true,
            Narrowing::Trigram(t) => have.contains(t),
            Narrowing::And(v) => v.iter().all(|q| admits(q, have)),
            Narrowing::Or(v) => v.iter().any(|q| admits(q, have)),
        }
    }

    #[test]
    fn a_literal_needs_its_trigrams_lowercased_and_a_short_one_narrows_nothing() {
        let n = Narrowing::of_pattern("Effective Date", false, false);
        assert!(admits(&n, &trigrams_of("the effective date of")));
        assert!(!admits(&n, &trigrams_of("the effective day")));
        assert!(Narrowing::of_pattern("ab", false, false).is_all());
        assert!(Narrowing::of_pattern(r"\d{3}-\d{4}", false, false).is_all());
        // A small class is its members: [aeiou]{4} is an OR of their four-letter words.
        assert!(matches!(Narrowing::of_pattern("[aeiou]{4}", false, false), Narrowing::Or(_)));
    }

    #[test]
    fn inner_literals_and_alternations_narrow() {
        // Neither a prefix nor a suffix: the literal in the middle.
        let n = Narrowing::of_pattern(r"\s+(Sherlock|[A-Z]atso)\s+", false, false);
        assert!(!n.is_all(), "{n:?}");
        assert!(admits(&n, &trigrams_of(" sherlock ")));
        assert!(admits(&n, &trigrams_of(" watso ")));
        assert!(!admits(&n, &trigrams_of(" holmes ")));
        let n = Narrowing::of_pattern(r"foo\d+bar", false, false);
        assert!(!admits(&n, &trigrams_of("foo1")) && admits(&n, &trigrams_of("foo12bar")));
        // A branch without a literal makes the whole alternation a scan.
        assert!(Narrowing::of_pattern(r"hello|\w+", false, false).is_all());
    }

    #[test]
    fn case_insensitive_literals_keep_their_non_ascii_variants() {
        // (?i)k also matches the Kelvin sign, which ASCII lowercasing leaves as it is.
        let n = Narrowing::of_pattern("kiss", true, false);
        assert!(admits(&n, &trigrams_of("KISS")));
        assert!(admits(&n, &trigrams_of("\u{212A}iss")));
        assert!(admits(&n, &trigrams_of("ki\u{17F}s")));
        assert!(!admits(&n, &trigrams_of("kiosk")));
        let n = Narrowing::of_pattern("straße", true, false);
        assert!(admits(&n, &trigrams_of("STRAßE")));
    }

    #[test]
    fn a_fixed_pattern_is_its_own_literal() {
        let n = Narrowing::of_pattern("Section 2.1 (a)", false, true);
        assert!(admits(&n, &trigrams_of("see section 2.1 (a) below")));
        assert!(!admits(&n, &trigrams_of("section 2x1 (a)")));
    }

    #[test]
    fn the_fixed_patterns_are_fifty_and_parse() {
        assert_eq!(FIXED_PATTERNS.len(), 50);
        let mut narrowed = 0;
        for p in FIXED_PATTERNS {
            RegexMatcherBuilder::new()
                .case_insensitive(p.ignore_case)
                .fixed_strings(p.fixed)
                .line_terminator(Some(b'\n'))
                .build(p.pattern)
                .unwrap();
            narrowed += usize::from(!Narrowing::of_pattern(p.pattern, p.ignore_case, p.fixed).is_all());
        }
        assert!((40..50).contains(&narrowed), "{narrowed} of 50 have literals");
    }
}
