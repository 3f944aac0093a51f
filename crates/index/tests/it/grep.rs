//! Identical matches, proven (issue 15, item 10): 1,000 generated patterns and the 50 fixed
//! ones over a fixture collection, each compared with `rg -uuu --sort path --json` on a mirror
//! of the collection's text: the same files, lines and match ranges. Every pattern runs on the
//! path `grep` picks and on the other one (a scan, or narrowed whatever its candidates when it
//! has literals), so the trigram query is checked never to drop a chunk that matches.

use quarry_index::collection::{CollectionRow, GrepOptions, GrepPath, FIXED_PATTERNS};
use quarry_index::{Library, UpdateOptions};

use crate::common;

/// splitmix64: a seeded generator, so a failure names a pattern that replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// Speeches, a law's README, contracts, the declaration in four Latin-1 languages, and files
/// made for the edges: CRLF, case variants outside ASCII, a file of many chunks, and a folder
/// walked before a file of the same stem.
fn fixture(dir: &std::path::Path) {
    let corpora = common::documents().join("..");
    let copy = |from: &std::path::Path, to: &str| {
        let to = dir.join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    };
    let mut speeches: Vec<_> =
        std::fs::read_dir(corpora.join("inaugural")).unwrap().map(|e| e.unwrap().path()).collect();
    speeches.sort();
    for p in speeches.iter().filter(|p| p.extension().is_some_and(|e| e == "txt")).step_by(2) {
        copy(p, &format!("speeches/{}", p.file_name().unwrap().to_string_lossy()));
    }
    for name in ["English-Latin1", "French_Francais-Latin1", "German_Deutsch-Latin1", "Spanish-Latin1"] {
        copy(&corpora.join("udhr").join(name), &format!("udhr/{name}.txt"));
    }
    copy(&corpora.join("gdpr/GDPRtEXT_README.md"), "gdpr/README.md");
    let mut contracts: Vec<_> = std::fs::read_dir(common::cuad_text()).unwrap().map(|e| e.unwrap().path()).collect();
    contracts.sort();
    for (i, p) in contracts.iter().step_by(60).enumerate() {
        copy(p, &format!("contracts/c{i:02}.txt"));
    }
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(dir.join("a/x.txt"), "inside the folder: Error: file not found (code 404)\n").unwrap();
    std::fs::write(dir.join("a.txt"), "beside it: error: FILE NOT FOUND\nno newline at the end").unwrap();
    std::fs::write(dir.join("crlf.txt"), "first line\r\nsecond clause\r\nthe Effective Date\r\n").unwrap();
    std::fs::write(
        dir.join("unicode.txt"),
        "Straße and STRASSE\nΣΑΣ σας café Café\n\u{212A}ISS the \u{212A}elvin sign, ki\u{17F}s the long s\nÅngström \u{212B}ngström\n",
    )
    .unwrap();
    let long: String = (1..=6000)
        .map(|i| format!("line {i}: invoice 555-{i} of the quarterly audit, $1{i}.{:02} due\n", i % 100))
        .collect();
    std::fs::create_dir_all(dir.join("ledger")).unwrap();
    std::fs::write(dir.join("ledger/long.txt"), long).unwrap();
}

fn collection() -> (tempfile::TempDir, tempfile::TempDir, Library, CollectionRow) {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let data = tempfile::tempdir().unwrap();
    let mut library = Library::open(data.path()).unwrap();
    let row = library.add(dir.path(), Some("fixture")).unwrap();
    let options = UpdateOptions { extractor: Some(common::config(&[])), workers: 1, ..Default::default() };
    let report = library.update(&row, &options, &|_| {}, None).unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    (dir, data, library, row)
}

/// (pattern, -i, -F)
type Case = (String, bool, bool);

/// The words (letters only) and lines of the mirror's files, to draw patterns from.
fn material(mirror: &std::path::Path) -> (Vec<String>, Vec<String>) {
    let mut lines = Vec::new();
    for e in ignore::WalkBuilder::new(mirror).hidden(false).build().flatten() {
        if e.file_type().is_some_and(|t| t.is_file()) {
            let text = std::fs::read_to_string(e.path()).unwrap();
            lines.extend(text.lines().filter(|l| l.trim().len() >= 8).map(str::to_string));
        }
    }
    lines.sort();
    let mut words: Vec<String> = lines
        .iter()
        .flat_map(|l| l.split(|c: char| !c.is_alphabetic()).filter(|w| w.chars().count() >= 3).map(str::to_string))
        .collect();
    words.sort();
    words.dedup();
    (words, lines)
}

/// A substring of `line` of 3 to 24 bytes, cut at character boundaries.
fn substring(rng: &mut Rng, line: &str) -> String {
    let starts: Vec<usize> = line.char_indices().map(|(i, _)| i).collect();
    let start = *rng.pick(&starts);
    let rest = &line[start..];
    let ends: Vec<usize> = rest.char_indices().map(|(i, _)| i).chain([rest.len()]).filter(|&i| i >= 3).collect();
    if ends.is_empty() {
        return rest.to_string();
    }
    let end = ends[rng.below(ends.len().min(22))];
    rest[..end].to_string()
}

fn flip_case(rng: &mut Rng, s: &str) -> String {
    s.chars()
        .map(|c| match rng.below(3) {
            0 => c.to_uppercase().next().unwrap_or(c),
            1 => c.to_lowercase().next().unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// The 1,000 generated cases, seeded.
fn generated(seed: u64, words: &[String], lines: &[String]) -> Vec<Case> {
    let mut rng = Rng(seed);
    let mut cases = Vec::new();
    for i in 0..1000 {
        let case = match i % 10 {
            // A substring of a line, as a regex (escaped), as it is, with -i.
            0 | 1 => {
                let line = rng.pick(lines);
                (regex_syntax::escape(&substring(&mut rng, line)), false, false)
            }
            2 => {
                let line = rng.pick(lines);
                let s = substring(&mut rng, line);
                (regex_syntax::escape(&flip_case(&mut rng, &s)), true, false)
            }
            // -F with whatever the substring holds ($, ., parentheses), and with metacharacters added.
            3 => {
                let line = rng.pick(lines);
                let s = substring(&mut rng, line);
                (s, rng.below(2) == 0, true)
            }
            4 => {
                let w = rng.pick(words).clone();
                let meta = *rng.pick(&["(", ")", ".", "*", "$", "^", "[", "]", "\\", "+", "?", "{2}", "|"]);
                (format!("{w}{meta}"), rng.below(2) == 0, true)
            }
            // Words with -i, and as whole words.
            5 => {
                let w = rng.pick(words);
                (flip_case(&mut rng, w), true, false)
            }
            6 => {
                let n = 2 + rng.below(3);
                let alts: Vec<String> = (0..n).map(|_| regex_syntax::escape(rng.pick(words).as_str())).collect();
                let p = match rng.below(3) {
                    0 => alts.join("|"),
                    1 => format!(r"\b(?:{})\b", alts.join("|")),
                    _ => format!("(?:{}) {}", alts.join("|"), regex_syntax::escape(rng.pick(words).as_str())),
                };
                (p, rng.below(2) == 0, false)
            }
            // Classes: a letter of a word made a class, a word then more word characters, digits.
            7 => {
                let w: Vec<char> = rng.pick(words).chars().collect();
                let k = rng.below(w.len());
                let escaped = |cs: &[char]| regex_syntax::escape(&cs.iter().collect::<String>());
                let p = match rng.below(5) {
                    0 => format!("{}[{}x]{}", escaped(&w[..k]), w[k], escaped(&w[k + 1..])),
                    1 => format!(r"{}\w*", escaped(&w)),
                    2 => format!(r"\w+{}\b", escaped(&w[k..])),
                    3 => format!(r"{}\s+\w+", escaped(&w)),
                    _ => format!(r"\d+\S* {}", escaped(&w)),
                };
                (p, rng.below(3) == 0, false)
            }
            // A line's words with anything between them.
            8 => {
                let line = rng.pick(lines);
                let ws: Vec<&str> = line.split_whitespace().filter(|w| w.len() >= 3).collect();
                let p = match ws.len() {
                    0 | 1 => regex_syntax::escape(line.trim()),
                    n => {
                        let a = rng.below(n - 1);
                        format!(
                            "{}.*{}",
                            regex_syntax::escape(ws[a]),
                            regex_syntax::escape(ws[a + 1 + rng.below(n - a - 1)])
                        )
                    }
                };
                (p, false, false)
            }
            // Patterns that match nothing.
            _ => {
                let w = rng.pick(words).clone();
                let p = match rng.below(3) {
                    0 => format!("{w}qzxv"),
                    1 => format!("zq{}xj", (0..4).map(|_| (b'a' + rng.below(26) as u8) as char).collect::<String>()),
                    _ => format!("{w} {w} {w} {w}"),
                };
                (p, rng.below(2) == 0, rng.below(2) == 0)
            }
        };
        cases.push(case);
    }
    cases
}

type Hits = Vec<(String, usize, Vec<[usize; 2]>)>;

fn ours(library: &Library, row: &CollectionRow, case: &Case, path: GrepPath) -> (Hits, &'static str) {
    let options = GrepOptions { ignore_case: case.1, fixed: case.2, path, ..Default::default() };
    let report = library.grep(row, &case.0, &options).unwrap_or_else(|e| panic!("{case:?}: {e}"));
    (report.hits.into_iter().map(|h| (h.path, h.line, h.ranges)).collect(), report.path)
}

#[test]
fn a_thousand_generated_patterns_and_the_fifty_fixed_ones_match_exactly_what_rg_matches() {
    let (_dir, _data, library, row) = collection();
    let mirror = common::mirror(&library, &row);
    let (words, lines) = material(mirror.path());
    let mut cases = generated(15, &words, &lines);
    cases.extend(FIXED_PATTERNS.iter().map(|p| (p.pattern.to_string(), p.ignore_case, p.fixed)));
    assert_eq!(cases.len(), 1050);
    let (mut matched, mut narrowed, mut forced) = (0, 0, 0);
    for case in &cases {
        let mut flags = Vec::new();
        if case.1 {
            flags.push("-i");
        }
        if case.2 {
            flags.push("-F");
        }
        let theirs = common::rg(mirror.path(), &flags, &case.0);
        let (auto, path) = ours(&library, &row, case, GrepPath::Auto);
        assert_eq!(auto, theirs, "{case:?} ({path})");
        matched += usize::from(!theirs.is_empty());
        narrowed += usize::from(path == "narrowed");
        // The other path too: a scan of what was narrowed, narrowed (if it can be) what was not.
        let other = if path == "narrowed" { GrepPath::Scan } else { GrepPath::Narrowed };
        let (again, other_path) = ours(&library, &row, case, other);
        assert_eq!(again, theirs, "{case:?} ({other_path})");
        forced += usize::from(path == "narrowed" || other_path == "narrowed");
    }
    eprintln!("{matched} of {} cases matched, {narrowed} were narrowed, {forced} have literals", cases.len());
    // The cases must mean something: most match, most narrow, a few do not narrow.
    assert!(matched >= 600, "only {matched} of 1050 cases matched anything");
    assert!(narrowed >= 500, "only {narrowed} of 1050 cases were narrowed");
    assert!(forced < cases.len(), "every case had literals");
}

#[test]
fn a_narrowed_grep_keeps_the_scans_order_max_and_globs() {
    let (_dir, _data, library, row) = collection();
    let mirror = common::mirror(&library, &row);
    for pattern in ["Effective Date", "(?i)liberty", "invoice 555-1", "found"] {
        let scan = GrepOptions { path: GrepPath::Scan, ..Default::default() };
        let all = library.grep(&row, pattern, &scan).unwrap();
        assert_eq!(all.path, "scan");
        for max in [1, 3, 7, 50] {
            let narrowed = GrepOptions { path: GrepPath::Narrowed, max, ..Default::default() };
            let report = library.grep(&row, pattern, &narrowed).unwrap();
            assert_eq!(report.path, "narrowed", "{pattern}");
            assert_eq!(report.hits, all.hits.iter().take(max).cloned().collect::<Vec<_>>(), "{pattern} max {max}");
            assert_eq!(report.truncated, all.hits.len() > max, "{pattern} max {max}");
        }
        for glob in ["speeches/**", "!contracts/", "*.md", "!ledger/**"] {
            let globbed = GrepOptions { path: GrepPath::Narrowed, globs: vec![glob.into()], ..Default::default() };
            let ours: Hits = library
                .grep(&row, pattern, &globbed)
                .unwrap()
                .hits
                .into_iter()
                .map(|h| (h.path, h.line, h.ranges))
                .collect();
            assert_eq!(ours, common::rg(mirror.path(), &["-g", glob], pattern), "{pattern} -g {glob}");
        }
    }
    // A selective pattern is narrowed on its own, and to few chunks.
    let report = library.grep(&row, "Gettysburg|zzqxj", &Default::default()).unwrap();
    assert_eq!(report.path, "narrowed");
    assert!(report.candidates * 20 <= report.total_chunks, "{} of {}", report.candidates, report.total_chunks);
    let report = library.grep(&row, r"\d{3}-\d{4}", &Default::default()).unwrap();
    assert_eq!((report.path, report.candidates), ("scan", report.total_chunks));
}

#[test]
fn an_index_of_the_old_version_is_outdated_until_updated() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "alpha beta gamma\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut library = Library::open(data.path()).unwrap();
    let row = library.add(dir.path(), Some("old")).unwrap();
    // A version-1 index: the schema before the `tri` field, one committed chunk.
    let index_dir = library.index_dir(row.id);
    std::fs::create_dir_all(&index_dir).unwrap();
    {
        use tantivy::schema::{Schema, FAST, INDEXED, STORED, TEXT};
        let mut b = Schema::builder();
        let file = b.add_u64_field("file", INDEXED | FAST | STORED);
        let text = b.add_text_field("text", TEXT | STORED);
        let index = tantivy::Index::create_in_dir(&index_dir, b.build()).unwrap();
        let mut w: tantivy::IndexWriter = index.writer(15_000_000).unwrap();
        w.add_document(tantivy::doc!(file => 1u64, text => "alpha beta gamma\n")).unwrap();
        let mut prepared = w.prepare_commit().unwrap();
        prepared.set_payload(r#"{"gen": 1, "version": 1}"#);
        prepared.commit().unwrap();
    }
    let err = library.grep(&row, "beta", &Default::default()).unwrap_err();
    assert!(matches!(err, quarry_index::Error::Outdated { found: 1, wanted: 2, .. }), "{err:?}");
    assert!(err.to_string().contains("quarry index update old"), "{err}");
    let options = UpdateOptions { extractor: Some(common::config(&[])), workers: 1, ..Default::default() };
    let report = library.update(&row, &options, &|_| {}, None).unwrap();
    assert_eq!(report.indexed, 1, "{report:?}");
    let hits = library.grep(&row, "beta", &Default::default()).unwrap().hits;
    assert_eq!(hits.len(), 1);
    assert!(library.check(&row).unwrap().is_empty());
}
