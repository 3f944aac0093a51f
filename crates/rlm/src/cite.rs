//! Citations: where an answer says its facts come from, read out of the answer text and checked
//! against the folder.
//!
//! Models cite in many shapes; these are read: `path:12`, `path:12-15`, `path:L12-L15`,
//! `path, line 12`, `path (lines 12 to 15)`, and a bare `path` (the whole file). Paged documents
//! (PDF, Office, EPUB, mail) are also cited by page: `msa.pdf p. 12`, `msa.pdf, page iv, lines
//! 3-5`, `msa.pdf (p. 12, line 3)`, the page named by its label first, then by its number, and
//! the lines counted within it; the checker checks that the page exists and holds those lines.
//! Every citation then carries its page and a [`Citation::location`] as a reader wants it:
//! `contracts/msa.pdf p. 12, lines 3–5`, or `notes.txt:3-5` for text. A path is any
//! document of the folder, written in full, as a suffix of an absolute path, or by its file name
//! when that name is unique; `name.ext:12` naming no document is kept as an unverified citation,
//! since a made-up source is exactly what a reader must see flagged.
//!
//! A citation is **verified** when its file and line range exist and the claim it supports holds
//! there. The claim is the answer text between the previous citation (or the line start) and this
//! one; if it quotes text (`"..."`), every quote must appear in the cited lines; otherwise every
//! number in it must appear there as a number; a claim with neither is checked for existence
//! only. [`Check`] records which test was applied, so a reader can tell a quote-checked citation
//! from an existence-checked one.

use std::collections::HashMap;
use std::sync::OnceLock;

use quarry_index::Folder;
use quarry_repl::Source;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// One source an answer cites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    pub path: String,
    /// 1-based, inclusive lines of the whole document's text (what `read(path, start, end)`
    /// takes); a bare file citation covers the whole file.
    pub line_start: usize,
    pub line_end: usize,
    /// The physical page (1-based) of `line_start` in a paged document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// What the document calls that page ("iv", "12", a sheet's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_label: Option<String>,
    /// The citation as a reader wants it: `contracts/msa.pdf p. 12, lines 3–5`, `notes.txt:3-5`.
    #[serde(default)]
    pub location: String,
    /// The cited lines hold the claim's quote or numbers: `status` is [`Status::Verified`].
    pub verified: bool,
    pub status: Status,
    pub check: Check,
    /// Why an unverified citation failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The answer cited nothing, and Quarry found these lines among those the run read (grep
    /// and search hits, chunks sent to sub-calls) holding the answer's numbers or quotes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub found: bool,
}

/// What checking a citation established. A file and lines that exist do not make an answer
/// right: a wrong answer ("the access code is `1945-Truman.txt`") once came with
/// `1945-Truman.txt:1-60 ✓`, checked only for existence. So that is `Unchecked`, shown apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The cited lines contain the claim's quoted text or its numbers.
    Verified,
    /// The lines exist, but the claim has no quote or number to look for in them.
    Unchecked,
    /// The file, page or lines do not exist, or do not hold the quote or numbers.
    #[default]
    Failed,
}

/// What was checked in the cited lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Quoted text from the claim.
    Quote,
    /// The numbers in the claim.
    Numbers,
    /// Only that the file and the lines exist.
    Exists,
}

/// Reads the citations out of `answer` and verifies each against `folder`. Citations come in the
/// order the answer gives them, duplicates removed.
pub fn cite(answer: &str, folder: &Folder) -> Vec<Citation> {
    cite_with_sources(answer, folder, &[])
}

/// As [`cite`], and a citation naming a file without lines is narrowed to the first range the
/// run actually looked at in that file (`sources`: grep hits and chunks handed to sub-calls, in
/// the order they were seen) where the claim checks out by quote or number.
pub fn cite_with_sources(answer: &str, folder: &Folder, sources: &[Source]) -> Vec<Citation> {
    let found = find(answer, folder);
    if found.is_empty() {
        return found_in_sources(answer, folder, sources).into_iter().collect();
    }
    let mut out: Vec<Citation> = Vec::new();
    for (i, f) in found.iter().enumerate() {
        let claim = claim_for(answer, &found, i);
        let mut c = verify(f, &claim, folder);
        if f.lines.is_none() && f.page.is_none() && c.verified {
            let narrowed = sources.iter().filter(|s| s.path == f.path).take(50).find_map(|s| {
                let n = verify(&Found { lines: Some((s.line_start, s.line_end)), ..f.clone() }, &claim, folder);
                n.verified.then_some(n)
            });
            if let Some(n) = narrowed {
                c = n;
            }
        }
        if !out.iter().any(|o| o.path == c.path && o.line_start == c.line_start && o.line_end == c.line_end) {
            out.push(c);
        }
    }
    out
}

/// For an answer that cites nothing: the first range the run looked at whose lines hold every
/// number (or quote) of the answer, marked [`Citation::found`]. The 1.5B root wrote "100,000
/// shares" after its grep had printed `sphere3d-consulting.pdf 52 A total of 100,000 of the
/// Company's restricted common stock`, but no path:line; a reader still needs to see where.
/// An answer with neither numbers nor quotes gets none: existence proves nothing.
fn found_in_sources(answer: &str, folder: &Folder, sources: &[Source]) -> Option<Citation> {
    if quotes_in(answer).is_empty() && numbers_in(answer).is_empty() {
        return None;
    }
    sources.iter().take(2_000).find_map(|s| {
        let f = Found {
            span: (0, 0),
            path: s.path.clone(),
            lines: Some((s.line_start, s.line_end)),
            page: None,
            unknown: false,
        };
        let mut c = verify(&f, answer, folder);
        c.found = true;
        (c.verified).then_some(c)
    })
}

/// A citation as written, before verification.
#[derive(Debug, Clone)]
struct Found {
    /// Byte span in the answer, path and line spec together.
    span: (usize, usize),
    path: String,
    lines: Option<(usize, usize)>,
    /// The page as written (`p. 12`, `page iv`); `lines` then count within it.
    page: Option<String>,
    /// The path names no document of the folder.
    unknown: bool,
}

/// A page after a path: `p. 12`, `, page iv`, ` (pp. 3`, optionally followed by its lines
/// (`, lines 3-5`, `line 4`, `:3`).
fn page_spec() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"^\s*[,(\[]?\s*(?:on\s+|at\s+)?(?:pp?\.|pages?)\s*([A-Za-z0-9][\w.-]*?)(?:\s*[,;]?\s*(?:lines?\s+|ll?\.\s*|:\s*L?)(\d+)(?:\s*(?:-|–|to|and)\s*L?(\d+))?)?(?:[\s,;)\].]|$)",
        )
        .expect("valid regex")
    })
}

fn line_spec() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"^(?::\s*L?(\d+)(?:\s*[-–]\s*L?(\d+))?|\s*[,(]?\s*(?:at\s+|on\s+)?lines?\s+(\d+)(?:\s*(?:-|–|to|and)\s*(\d+))?)",
        )
        .expect("valid regex")
    })
}

fn unknown_path() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"[\w./-]*\w\.[A-Za-z0-9]{1,6}:L?(\d+)(?:\s*[-–]\s*L?(\d+))?").expect("valid regex"))
}

fn find(answer: &str, folder: &Folder) -> Vec<Found> {
    // Needles: every path, and every file name that only one document has.
    let mut names: HashMap<&str, Vec<&str>> = HashMap::new();
    for d in folder.documents() {
        let name = d.path.rsplit('/').next().unwrap_or(&d.path);
        names.entry(name).or_default().push(&d.path);
    }
    let mut needles: Vec<(&str, &str)> =
        folder.documents().iter().map(|d| (d.path.as_str(), d.path.as_str())).collect();
    for (name, paths) in &names {
        if paths.len() == 1 && *name != paths[0] {
            needles.push((name, paths[0]));
        }
    }
    needles.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));

    let mut found: Vec<Found> = Vec::new();
    let taken = |found: &[Found], s: usize, e: usize| found.iter().any(|f| s < f.span.1 && f.span.0 < e);
    for (needle, path) in needles {
        for (start, _) in answer.match_indices(needle) {
            let end = start + needle.len();
            let before = answer[..start].chars().next_back();
            let after = answer[end..].chars().next();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
                || after.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '/')
                || taken(&found, start, end)
            {
                continue;
            }
            let layout = folder.layout(path).filter(|l| l.is_paged());
            let paged = layout.and_then(|l| {
                let c = page_spec().captures(&answer[end..])?;
                let label = c.get(1)?.as_str();
                // A number or numeral that is no page is a wrong citation to flag; another word
                // after "page" ("page describes") is prose.
                let numeral = label.chars().all(|ch| ch.is_ascii_digit())
                    || label.len() <= 6 && label.chars().all(|ch| "ivxlcdm".contains(ch));
                if l.find_page(label).is_none() && !numeral {
                    return None;
                }
                let a = c.get(2).and_then(|m| m.as_str().parse().ok());
                let b = c.get(3).and_then(|m| m.as_str().parse().ok());
                // The spec's trailing delimiter is not part of it.
                let len = c.get(3).or(c.get(2)).or(c.get(1)).map_or(0, |m| m.end());
                Some((label.to_string(), a.map(|a| (a, b.unwrap_or(a))), len))
            });
            if let Some((page, lines, len)) = paged {
                found.push(Found {
                    span: (start, end + len),
                    path: path.to_string(),
                    lines,
                    page: Some(page),
                    unknown: false,
                });
                continue;
            }
            let (lines, spec_len) = match line_spec().captures(&answer[end..]) {
                Some(c) => {
                    let a = c.get(1).or(c.get(3)).and_then(|m| m.as_str().parse().ok());
                    let b = c.get(2).or(c.get(4)).and_then(|m| m.as_str().parse().ok());
                    (a.map(|a| (a, b.unwrap_or(a))), c.get(0).map_or(0, |m| m.len()))
                }
                None => (None, 0),
            };
            found.push(Found {
                span: (start, end + spec_len),
                path: path.to_string(),
                lines,
                page: None,
                unknown: false,
            });
        }
    }
    for c in unknown_path().captures_iter(answer) {
        let m = c.get(0).expect("whole match");
        if taken(&found, m.start(), m.end()) {
            continue;
        }
        let path = m.as_str().split(':').next().unwrap_or_default().to_string();
        let a: usize = c[1].parse().unwrap_or(0);
        let b = c.get(2).and_then(|m| m.as_str().parse().ok()).unwrap_or(a);
        found.push(Found { span: (m.start(), m.end()), path, lines: Some((a, b)), page: None, unknown: true });
    }
    found.sort_by_key(|f| f.span.0);
    found
}

/// The words a citation supports: from the previous citation (or the start of the line) to this
/// one; when that is empty (a citation leading its line), from this one to the next.
fn claim_for(answer: &str, found: &[Found], i: usize) -> String {
    let (start, end) = found[i].span;
    let line_start = answer[..start].rfind('\n').map_or(0, |p| p + 1);
    let from = if i > 0 { found[i - 1].span.1.max(line_start) } else { line_start };
    let before = &answer[from.min(start)..start];
    if before.chars().any(|c| c.is_alphanumeric()) {
        return before.to_string();
    }
    let line_end = answer[end..].find('\n').map_or(answer.len(), |p| end + p);
    let to = found.get(i + 1).map_or(line_end, |n| n.span.0.min(line_end)).max(end);
    answer[end..to].to_string()
}

fn verify(f: &Found, claim: &str, folder: &Folder) -> Citation {
    let mut c = check(f, claim, folder);
    let layout = folder.layout(&c.path).filter(|l| l.is_paged() && !f.unknown);
    let whole_file = f.lines.is_none() && f.page.is_none() && is_whole_file(&c, folder);
    if let Some((page, _)) = layout.filter(|_| !whole_file).and_then(|l| l.locate(c.line_start)) {
        c.page = Some(page.number);
        c.page_label = Some(page.label.clone());
    }
    c.location = match layout {
        _ if whole_file => c.path.clone(),
        // A page that does not exist is shown as written.
        Some(_) if c.problem.is_some() && f.page.is_some() => {
            let page = f.page.as_deref().unwrap_or_default();
            match f.lines {
                Some((a, b)) if a != b => format!("{} p. {page}, lines {a}\u{2013}{b}", c.path),
                Some((a, _)) => format!("{} p. {page}, line {a}", c.path),
                None => format!("{} p. {page}", c.path),
            }
        }
        Some(l) => l.cite(&c.path, c.line_start, c.line_end),
        None => plain_location(&c),
    };
    c
}

fn plain_location(c: &Citation) -> String {
    if c.line_start == c.line_end {
        format!("{}:{}", c.path, c.line_start)
    } else {
        format!("{}:{}-{}", c.path, c.line_start, c.line_end)
    }
}

fn is_whole_file(c: &Citation, folder: &Folder) -> bool {
    folder.document(&c.path).is_some_and(|d| c.line_start == 1 && c.line_end == d.text.lines().count().max(1))
}

fn check(f: &Found, claim: &str, folder: &Folder) -> Citation {
    let mut c = Citation {
        path: f.path.clone(),
        line_start: f.lines.map_or(1, |l| l.0),
        line_end: f.lines.map_or(1, |l| l.1),
        page: None,
        page_label: None,
        location: String::new(),
        verified: false,
        status: Status::Failed,
        check: Check::Exists,
        problem: None,
        found: false,
    };
    let doc = match folder.document(&f.path) {
        Some(d) if !f.unknown => d,
        _ => {
            c.problem = Some(format!("no file {} in the folder", f.path));
            return c;
        }
    };
    let lines: Vec<&str> = doc.text.lines().collect();
    if let Some(label) = &f.page {
        // Lines within the page become lines of the document.
        let Some(span) = folder.layout(&f.path).and_then(|l| l.find_page(label)) else {
            c.problem = Some(format!("{} has no page {label}", f.path));
            return c;
        };
        let (a, b) = f.lines.unwrap_or((1, span.line_count.max(1)));
        if a == 0 || a > b || b > span.line_count.max(1) {
            c.problem = Some(format!("page {label} of {} has {} lines", f.path, span.line_count));
            return c;
        }
        c.line_start = span.first_line + a - 1;
        c.line_end = span.first_line + b - 1;
        if span.line_count == 0 {
            c.problem = Some(format!("page {label} of {} has no text", f.path));
            return c;
        }
    } else if f.lines.is_none() {
        c.line_end = lines.len().max(1);
    }
    if c.line_start == 0 || c.line_start > c.line_end || c.line_end > lines.len().max(1) {
        c.problem = Some(format!("{} has {} lines", f.path, lines.len()));
        return c;
    }
    let cited = lines[c.line_start - 1..c.line_end.min(lines.len())].join("\n");
    let quotes = quotes_in(claim);
    let numbers = numbers_in(claim);
    if !quotes.is_empty() {
        c.check = Check::Quote;
        let hay = normalize(&cited);
        if let Some(q) = quotes.iter().find(|q| !hay.contains(&normalize(q))) {
            c.problem = Some(format!("\"{q}\" is not in the cited lines"));
            return c;
        }
    } else if !numbers.is_empty() {
        c.check = Check::Numbers;
        let present = numbers_in(&cited);
        if let Some(n) = numbers.iter().find(|n| !present.contains(n)) {
            c.problem = Some(format!("{n} is not in the cited lines"));
            return c;
        }
    }
    c.verified = c.check != Check::Exists;
    c.status = if c.verified { Status::Verified } else { Status::Unchecked };
    c
}

fn quotes_in(claim: &str) -> Vec<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r#""([^"\n]{4,})"|“([^”\n]{4,})”"#).expect("valid regex"));
    re.captures_iter(claim).filter_map(|c| c.get(1).or(c.get(2)).map(|m| m.as_str().trim().to_string())).collect()
}

/// Numbers as written, thousands separators dropped: `1,234` and `1234` are the same number.
fn numbers_in(text: &str) -> Vec<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"\d+(?:,\d{3})*(?:\.\d+)?").expect("valid regex"));
    let mut out: Vec<String> = re
        .find_iter(text)
        .map(|m| {
            let n = m.as_str().replace(',', "");
            let trimmed = n.trim_start_matches('0');
            if trimmed.is_empty() || trimmed.starts_with('.') {
                format!("0{trimmed}")
            } else {
                trimmed.to_string()
            }
        })
        .collect();
    out.dedup();
    out
}

fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_index::{Document, Layout};

    fn folder() -> Folder {
        Folder::from_documents(
            "/data",
            vec![
                Document {
                    path: "contracts/lease.txt".into(),
                    text: "Lease\nThe tenant pays 1,200 dollars.\nNotice period: 60 days.\n".into(),
                },
                Document {
                    path: "contracts/nda.txt".into(),
                    text: "NDA\nTerm: 2 years.\nGoverned by Delaware law.".into(),
                },
                Document { path: "notes/lease.txt".into(), text: "another lease".into() },
            ],
        )
    }

    fn short(c: &[Citation]) -> Vec<(&str, usize, usize, bool, Check)> {
        c.iter().map(|c| (c.path.as_str(), c.line_start, c.line_end, c.verified, c.check)).collect()
    }

    #[test]
    fn reads_every_citation_shape() {
        let f = folder();
        let a = "Notice is 60 days (contracts/lease.txt:3). Rent is 1200 (contracts/lease.txt, line 2). \
                 The term is 2 years [nda.txt:L2-L3]. Law: see contracts/nda.txt lines 3 to 3.";
        assert_eq!(
            short(&cite(a, &f)),
            [
                ("contracts/lease.txt", 3, 3, true, Check::Numbers),
                ("contracts/lease.txt", 2, 2, true, Check::Numbers),
                ("contracts/nda.txt", 2, 3, true, Check::Numbers),
                ("contracts/nda.txt", 3, 3, false, Check::Exists),
            ]
        );
    }

    #[test]
    fn wrong_numbers_quotes_ranges_and_files_are_flagged() {
        let f = folder();
        let c = cite("Notice is 90 days (contracts/lease.txt:3).", &f);
        assert_eq!(short(&c), [("contracts/lease.txt", 3, 3, false, Check::Numbers)]);
        assert_eq!(c[0].problem.as_deref(), Some("90 is not in the cited lines"));
        let c = cite("It says \"governed by Delaware law\" (contracts/nda.txt:3)", &f);
        assert_eq!(short(&c), [("contracts/nda.txt", 3, 3, true, Check::Quote)]);
        let c = cite("It says \"governed by Texas law\" (contracts/nda.txt:3)", &f);
        assert!(!c[0].verified);
        let c = cite("See contracts/nda.txt:9.", &f);
        assert_eq!(c[0].problem.as_deref(), Some("contracts/nda.txt has 3 lines"));
        let c = cite("See made/up.txt:4 and 5", &f);
        assert_eq!(short(&c), [("made/up.txt", 4, 4, false, Check::Exists)]);
    }

    #[test]
    fn bare_paths_absolute_paths_and_ambiguous_names() {
        let f = folder();
        // lease.txt is not unique, so only the full paths count; an absolute path ends in one.
        let c = cite("From /data/contracts/lease.txt and `notes/lease.txt`; lease.txt alone is ambiguous.", &f);
        assert_eq!(
            short(&c),
            [("contracts/lease.txt", 1, 3, false, Check::Exists), ("notes/lease.txt", 1, 1, false, Check::Exists)]
        );
        assert!(cite("Answer: 42", &f).is_empty());
    }

    #[test]
    fn a_bare_file_is_narrowed_to_the_lines_the_run_looked_at() {
        let f = folder();
        let src = |a, b| Source { path: "contracts/lease.txt".into(), line_start: a, line_end: b };
        let c = cite_with_sources("Notice is 60 days (contracts/lease.txt).", &f, &[src(2, 2), src(3, 3)]);
        assert_eq!(short(&c), [("contracts/lease.txt", 3, 3, true, Check::Numbers)]);
        // Nothing looked at supports the claim: the whole file stays cited.
        let c = cite_with_sources("Notice is 60 days (contracts/lease.txt).", &f, &[src(2, 2)]);
        assert_eq!(short(&c), [("contracts/lease.txt", 1, 3, true, Check::Numbers)]);
    }

    /// msa.pdf: page 1 is labelled "i" (lines 1-2), page 2 "1" (lines 3-4).
    fn paged() -> Folder {
        let span = |number, label: &str, first_line| quarry_index::PageSpan {
            number,
            label: label.into(),
            first_line,
            line_count: 2,
            ocr: false,
            note: None,
        };
        let layout = Layout {
            format: quarry_index::Kind::Pdf,
            extractor: "test".into(),
            pages: vec![span(1, "i", 1), span(2, "1", 3)],
            warnings: Vec::new(),
        };
        let text = "Master Services Agreement\nTerm: 3 years.\nFees: 5,000 per month.\nGoverned by Delaware law.\n";
        Folder::from_parts(
            "/data",
            vec![
                (Document { path: "contracts/msa.pdf".into(), text: text.into() }, layout),
                (Document { path: "notes.txt".into(), text: "a\nb".into() }, Layout::text(2)),
            ],
        )
    }

    fn located(c: &[Citation]) -> Vec<(&str, Option<u32>, bool)> {
        c.iter().map(|c| (c.location.as_str(), c.page, c.verified)).collect()
    }

    #[test]
    fn a_paged_document_is_cited_by_page_label_and_line_within_it() {
        let f = paged();
        // "p. 1" is the page labelled 1 (the second physical page); its line 1 is line 3.
        let c = cite("Fees are 5,000 (contracts/msa.pdf p. 1, line 1). Term 3 years: msa.pdf:2.", &f);
        assert_eq!(
            located(&c),
            [("contracts/msa.pdf p. 1, line 1", Some(2), true), ("contracts/msa.pdf p. i, line 2", Some(1), true)]
        );
        assert_eq!((c[0].line_start, c[0].page_label.as_deref()), (3, Some("1")));
        let c = cite("It is \"governed by Delaware law\" (msa.pdf, page 1)", &f);
        assert_eq!(located(&c), [("contracts/msa.pdf p. 1, lines 1\u{2013}2", Some(2), true)]);
        assert_eq!(c[0].check, Check::Quote);
        // Text files keep path:line.
        // With nothing in the claim to look for, an existing line is unchecked, not verified.
        let c = cite("b is at notes.txt:2", &f);
        assert_eq!(located(&c), [("notes.txt:2", None, false)]);
        assert_eq!((c[0].status, c[0].problem.as_deref()), (Status::Unchecked, None));
    }

    #[test]
    fn a_wrong_page_or_a_line_past_the_page_is_flagged() {
        let f = paged();
        let c = cite("Fees are 5,000 (msa.pdf p. i, line 2).", &f);
        assert_eq!(located(&c), [("contracts/msa.pdf p. i, line 2", Some(1), false)]);
        assert_eq!(c[0].problem.as_deref(), Some("5000 is not in the cited lines"));
        assert_eq!(c[0].status, Status::Failed);
        let c = cite("Fees are 5,000 (msa.pdf p. 9).", &f);
        assert_eq!(c[0].problem.as_deref(), Some("contracts/msa.pdf has no page 9"));
        assert_eq!(c[0].location, "contracts/msa.pdf p. 9");
        let c = cite("Fees are 5,000 (msa.pdf p. 1, lines 1-5).", &f);
        assert_eq!(c[0].problem.as_deref(), Some("page 1 of contracts/msa.pdf has 2 lines"));
        // "page" followed by a word is prose, and the citation is the bare file.
        let c = cite("The msa.pdf page describes fees.", &f);
        assert_eq!(located(&c), [("contracts/msa.pdf", None, false)]);
        assert_eq!(c[0].status, Status::Unchecked);
    }

    #[test]
    fn an_answer_citing_nothing_gets_the_first_line_the_run_read_that_holds_its_numbers() {
        let f = paged();
        let src = |a, b| Source { path: "contracts/msa.pdf".into(), line_start: a, line_end: b };
        let c = cite_with_sources("5,000 a month", &f, &[src(2, 2), src(3, 3), src(3, 4)]);
        assert_eq!(located(&c), [("contracts/msa.pdf p. 1, line 1", Some(2), true)]);
        assert!(c[0].found);
        // Nothing read holds the number, or there is nothing to check: no citation.
        assert!(cite_with_sources("7,000 a month", &f, &[src(1, 4)]).is_empty());
        assert!(cite_with_sources("Delaware", &f, &[src(4, 4)]).is_empty());
        // A cited answer is left as written.
        assert!(!cite_with_sources("5,000 (msa.pdf:3)", &f, &[src(3, 3)])[0].found);
    }

    #[test]
    fn a_leading_citation_supports_the_text_after_it() {
        let f = folder();
        let c = cite("- contracts/lease.txt:3: 60 days\n- contracts/nda.txt:2: 5 years", &f);
        assert_eq!(
            short(&c),
            [("contracts/lease.txt", 3, 3, true, Check::Numbers), ("contracts/nda.txt", 2, 2, false, Check::Numbers)]
        );
    }
}
