//! The REPL's document functions (`grep`, `search`, `read`, `files`) over one
//! [`quarry_index::Corpus`], as the JSON the harness hands to model code. [`CorpusHost`] is what
//! `quarry repl --folder` serves and what the RLM's [`crate::host::RunHost`] delegates to, so the
//! root model and a person at `quarry repl` get the same hits for the same call (issue 15: the
//! REPL used to match substrings where the RLM used regexes and BM25).
//!
//! Shapes: a grep hit is `{"path", "line", "text"}`, a search hit `{"path", "line", "line_end",
//! "score", "text"}`; both add `"page"`, `"page_label"` and `"page_line"` on a paged document
//! (PDF, Office, EPUB, mail), so citations can name the page.

use std::sync::Arc;

use quarry_index::{Corpus, GrepHit, SearchHit};
use quarry_repl::{HostFunctions, HostResult, PageRef};
use serde_json::{json, Value};

/// Longest hit text `grep` returns; a longer line is cut to a window around the match.
pub const MAX_HIT_CHARS: usize = 400;

/// `line`, or for a line longer than [`MAX_HIT_CHARS`] the window of it around the match at
/// `start..end`, with `…` where it was cut (ripgrep's `--max-columns-preview`). Extracted Word
/// paragraphs run to 3,000 characters: the 1.5B root printed ten hits of a contract's table of
/// contents and never saw the eleventh, the one it needed; `read(path, line, line)` gives the
/// whole line.
pub fn hit_preview(line: &str, start: usize, end: usize) -> String {
    if line.chars().count() <= MAX_HIT_CHARS {
        return line.to_string();
    }
    let floor = |mut i: usize| {
        while !line.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let context = MAX_HIT_CHARS.saturating_sub(end - start) / 2;
    let from = floor(start.saturating_sub(context));
    // `end` is a char boundary, so flooring from at or past it never lands before it.
    let to = floor((end + context).min(line.len()));
    format!(
        "{}{}{}",
        if from > 0 { "\u{2026}" } else { "" },
        &line[from..to],
        if to < line.len() { "\u{2026}" } else { "" }
    )
}

fn with_page(mut hit: Value, paged: bool, page: u32, label: &str, page_line: usize) -> Value {
    if let (true, Some(obj)) = (paged, hit.as_object_mut()) {
        obj.insert("page".into(), page.into());
        obj.insert("page_label".into(), label.into());
        obj.insert("page_line".into(), page_line.into());
    }
    hit
}

/// A grep hit as model code sees it.
pub fn grep_json(h: &GrepHit) -> Value {
    let (start, end) = h.ranges.first().map_or((0, 0), |r| (r[0], r[1]));
    let hit = json!({ "path": h.path, "line": h.line, "text": hit_preview(&h.text, start, end) });
    with_page(hit, h.paged, h.page, &h.page_label, h.page_line)
}

/// A search hit as model code sees it (the score to three decimals).
pub fn search_json(h: &SearchHit) -> Value {
    let hit = json!({
        "path": h.path, "line": h.line_start, "line_end": h.line_end,
        "score": (h.score * 1000.0).round() / 1000.0, "text": h.text,
    });
    with_page(hit, h.paged, h.page, &h.page_label, h.page_line)
}

fn page_ref(p: &PageRef) -> quarry_index::corpus::PageRef {
    match p {
        PageRef::Number(n) => quarry_index::corpus::PageRef::Number(*n),
        PageRef::Label(l) => quarry_index::corpus::PageRef::Label(l.clone()),
    }
}

/// The document functions over a corpus; every other host function is unavailable.
#[derive(Clone)]
pub struct CorpusHost {
    pub corpus: Arc<dyn Corpus>,
}

impl CorpusHost {
    pub fn new(corpus: Arc<dyn Corpus>) -> CorpusHost {
        CorpusHost { corpus }
    }
}

impl HostFunctions for CorpusHost {
    /// ripgrep's regular expressions (the `regex` crate's syntax, which matches Python's `re` for
    /// everything a model writes in practice), one line at a time.
    fn grep(&self, pattern: &str, glob: Option<&str>, ignore_case: bool, max_results: usize) -> HostResult<Value> {
        if max_results == 0 {
            return Ok(Value::Array(Vec::new()));
        }
        let hits = self.corpus.grep(pattern, ignore_case, false, glob, max_results).map_err(|e| e.to_string())?;
        Ok(Value::Array(hits.iter().map(grep_json).collect()))
    }

    /// BM25, best first.
    fn search(&self, query: &str, k: usize) -> HostResult<Value> {
        let hits = self.corpus.search(query, k).map_err(|e| e.to_string())?;
        Ok(Value::Array(hits.iter().map(search_json).collect()))
    }

    /// With `page`, lines `start..=end` of that page (1-based within it); without, of the whole
    /// document.
    fn read(&self, path: &str, start: Option<usize>, end: Option<usize>, page: Option<&PageRef>) -> HostResult<String> {
        self.corpus.read(path, start, end, page.map(page_ref).as_ref()).map_err(|e| e.to_string())
    }

    fn files(&self, glob: &str) -> HostResult<Vec<String>> {
        self.corpus.files(glob).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_hit_line_is_cut_to_a_window_around_its_match() {
        let line = format!("{}needle{}", "a".repeat(1000), "é".repeat(1000));
        let start = line.find("needle").unwrap();
        let p = super::hit_preview(&line, start, start + 6);
        assert!(p.starts_with('\u{2026}') && p.ends_with('\u{2026}') && p.contains("aaaneedleééé"), "{p}");
        assert!(p.chars().count() <= super::MAX_HIT_CHARS + 2, "{}", p.chars().count());
        assert_eq!(super::hit_preview("short needle", 6, 12), "short needle");
    }
}
