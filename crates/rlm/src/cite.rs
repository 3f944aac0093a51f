//! Citations: where an answer says its facts come from, read out of the answer text and checked
//! against the folder.
//!
//! Models cite in many shapes; these are read: `path:12`, `path:12-15`, `path:L12-L15`,
//! `path, line 12`, `path (lines 12 to 15)`, and a bare `path` (the whole file). A path is any
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
    /// 1-based, inclusive; a bare file citation covers the whole file.
    pub line_start: usize,
    pub line_end: usize,
    pub verified: bool,
    pub check: Check,
    /// Why an unverified citation failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
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
    let mut out: Vec<Citation> = Vec::new();
    for (i, f) in found.iter().enumerate() {
        let claim = claim_for(answer, &found, i);
        let mut c = verify(f, &claim, folder);
        if f.lines.is_none() && c.verified && c.check != Check::Exists {
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

/// A citation as written, before verification.
#[derive(Debug, Clone)]
struct Found {
    /// Byte span in the answer, path and line spec together.
    span: (usize, usize),
    path: String,
    lines: Option<(usize, usize)>,
    /// The path names no document of the folder.
    unknown: bool,
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
            let (lines, spec_len) = match line_spec().captures(&answer[end..]) {
                Some(c) => {
                    let a = c.get(1).or(c.get(3)).and_then(|m| m.as_str().parse().ok());
                    let b = c.get(2).or(c.get(4)).and_then(|m| m.as_str().parse().ok());
                    (a.map(|a| (a, b.unwrap_or(a))), c.get(0).map_or(0, |m| m.len()))
                }
                None => (None, 0),
            };
            found.push(Found { span: (start, end + spec_len), path: path.to_string(), lines, unknown: false });
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
        found.push(Found { span: (m.start(), m.end()), path, lines: Some((a, b)), unknown: true });
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
    let mut c = Citation {
        path: f.path.clone(),
        line_start: f.lines.map_or(1, |l| l.0),
        line_end: f.lines.map_or(1, |l| l.1),
        verified: false,
        check: Check::Exists,
        problem: None,
    };
    let doc = match folder.document(&f.path) {
        Some(d) if !f.unknown => d,
        _ => {
            c.problem = Some(format!("no file {} in the folder", f.path));
            return c;
        }
    };
    let lines: Vec<&str> = doc.text.lines().collect();
    if f.lines.is_none() {
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
    c.verified = true;
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
    use quarry_index::Document;

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
                ("contracts/nda.txt", 3, 3, true, Check::Exists),
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
            [("contracts/lease.txt", 1, 3, true, Check::Exists), ("notes/lease.txt", 1, 1, true, Check::Exists)]
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
