//! Describing a folder to the root model without showing its contents: the model should learn
//! the *shape* of the data (how many files, how big, what kinds, where) and then decide in code
//! what to read — that is the whole point of the RLM method. Field names of record-structured
//! files count as shape (like a spreadsheet's header row); their values never appear.

use std::collections::BTreeMap;

use quarry_index::Folder;

/// Where each page of a paged document starts, for the REPL's `Document.pages` and `Chunk.page`.
pub fn page_marks(layout: &quarry_index::Layout) -> Vec<quarry_repl::PageMark> {
    if !layout.is_paged() {
        return Vec::new();
    }
    layout
        .pages
        .iter()
        .map(|p| quarry_repl::PageMark { number: p.number, label: p.label.clone(), first_line: p.first_line })
        .collect()
}

/// The shape of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderSummary {
    pub files: usize,
    pub total_chars: usize,
    /// `total_chars / 4`: a tokenizer-free estimate, good enough to choose a chunking strategy.
    pub estimated_tokens: usize,
    /// Extension (`"(none)"` when there is none) and how many files have it, most common first.
    pub types: Vec<(String, usize)>,
    /// `(path, chars)` in path order.
    pub sizes: Vec<(String, usize)>,
    /// Set when most non-empty lines are records the REPL's `records()` parses.
    pub records: Option<RecordShape>,
    /// Paged documents (PDF, Office, EPUB, mail) by path: how many pages, and what a page is
    /// ("page", "slide", "sheet", ...).
    pub pages: BTreeMap<String, (usize, &'static str)>,
    /// Files and pages by format (`1 pdf (4 pages), 2 text`), when any document is paged.
    pub formats: String,
    pub ocr_pages: usize,
}

/// Line-structured data: how many records and the field names most of them have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordShape {
    pub count: usize,
    pub fields: Vec<String>,
}

impl FolderSummary {
    pub fn of(folder: &Folder) -> FolderSummary {
        let docs = folder.documents();
        let sizes: Vec<(String, usize)> = docs.iter().map(|d| (d.path.clone(), d.text.chars().count())).collect();
        let total_chars = sizes.iter().map(|(_, n)| n).sum();
        let mut hist: BTreeMap<String, usize> = BTreeMap::new();
        for (path, _) in &sizes {
            *hist.entry(extension(path)).or_default() += 1;
        }
        let mut types: Vec<_> = hist.into_iter().collect();
        types.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let records = RecordShape::of(docs.iter().map(|d| (d.path.as_str(), d.text.as_str())));
        let pages: BTreeMap<String, (usize, &'static str)> = folder
            .entries()
            .filter(|(_, l)| l.is_paged())
            .map(|(d, l)| (d.path.clone(), (l.pages.len(), l.format.unit())))
            .collect();
        let (formats, ocr_pages) = match pages.is_empty() {
            true => (String::new(), 0),
            false => {
                let s = folder.summary();
                (s.formats_line(), s.ocr_pages)
            }
        };
        FolderSummary {
            files: sizes.len(),
            total_chars,
            estimated_tokens: total_chars / 4,
            types,
            sizes,
            records,
            pages,
            formats,
            ocr_pages,
        }
    }

    /// A few lines for the prompt; the file list stops after `max_files` entries with a note
    /// saying how many are left, so a 50 000-file folder does not fill the window.
    pub fn describe(&self, max_files: usize) -> String {
        let mut s = format!(
            "The folder has {} files, {} characters in total (about {} tokens).\n",
            self.files, self.total_chars, self.estimated_tokens
        );
        let types: Vec<String> = self.types.iter().map(|(t, n)| format!("{t}: {n}")).collect();
        s.push_str(&format!("File types: {}.\n", types.join(", ")));
        if !self.pages.is_empty() {
            s.push_str(&format!(
                "Documents: {}{}. Their text was extracted page by page: grep and search hits in them also give \"page\" (its number), \"page_label\" (what the document prints) and \"page_line\", and read(path, page=N) reads one page.\n",
                self.formats,
                match self.ocr_pages {
                    0 => String::new(),
                    1 => "; 1 scanned page read by OCR".into(),
                    n => format!("; {n} scanned pages read by OCR"),
                }
            ));
        }
        s.push_str("Files (characters):\n");
        for (path, chars) in self.sizes.iter().take(max_files) {
            match self.pages.get(path) {
                Some((n, unit)) => {
                    s.push_str(&format!("  {path} ({chars}; {n} {unit}{})\n", if *n == 1 { "" } else { "s" }))
                }
                None => s.push_str(&format!("  {path} ({chars})\n")),
            }
        }
        if self.sizes.len() > max_files {
            s.push_str(&format!("  ... and {} more files (list them with files())\n", self.sizes.len() - max_files));
        }
        if let Some(r) = &self.records {
            s.push_str(&format!(
                "The files hold {} records, one per line, with the fields {}: `records()` returns them as dicts (e.g. `r[\"{}\"]`).\n",
                r.count,
                r.fields.join(", "),
                r.fields.last().map(String::as_str).unwrap_or_default()
            ));
        }
        if self.has_python() {
            s.push_str(PYTHON_HELPERS);
        }
        s
    }

    /// Some files are Python source, so the REPL's `symbols()` and `imports()` apply.
    pub fn has_python(&self) -> bool {
        self.types.iter().any(|(t, _)| PYTHON.contains(&t.as_str()))
    }
}

const PYTHON: &[&str] = &[".py", ".pyi", ".pyw"];

impl RecordShape {
    /// The records in `(path, text)` documents, parsed as the REPL's `records()` parses them
    /// (crates/repl-worker/src/quarry_harness/records.py): `Key: value` fields joined by `||`, `|` or a tab, a
    /// JSON object per line, or rows under a .csv/.tsv header. `None` unless at least four in five
    /// non-empty lines are records: a contract with a few `Term: 12 months | Fee: 5` lines is prose.
    pub fn of<'a>(docs: impl Iterator<Item = (&'a str, &'a str)>) -> Option<RecordShape> {
        let mut lines = 0usize;
        let mut count = 0usize;
        let mut shapes: BTreeMap<Vec<String>, usize> = BTreeMap::new();
        for (path, text) in docs {
            let table = match extension(path).as_str() {
                ".csv" => Some(','),
                ".tsv" => Some('\t'),
                _ => None,
            };
            let mut rows = text.lines().filter(|l| !l.trim().is_empty());
            if let Some(sep) = table {
                // The header names the fields; quoted cells holding the separator are rare in
                // headers, and the count is only an estimate for the prompt.
                let Some(header) = rows.next() else { continue };
                // Extraction gives every sheet's rows as tab-separated lines, CSV included.
                let sep = if header.contains('\t') { '\t' } else { sep };
                let n = rows.count();
                lines += n;
                count += n;
                let fields = header.split(sep).map(|h| h.trim().trim_matches('"').to_string()).collect();
                *shapes.entry(fields).or_default() += n;
                continue;
            }
            for line in rows {
                lines += 1;
                if let Some(fields) = line_fields(line) {
                    count += 1;
                    *shapes.entry(fields).or_default() += 1;
                }
            }
        }
        if count == 0 || count * 5 < lines * 4 {
            return None;
        }
        let fields = shapes.into_iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))?.0;
        Some(RecordShape { count, fields })
    }
}

/// The field names of one record line, or `None` (see `RecordShape::of`).
fn line_fields(line: &str) -> Option<Vec<String>> {
    let s = line.trim();
    if s.starts_with('{') {
        let serde_json::Value::Object(map) = serde_json::from_str::<serde_json::Value>(s).ok()? else {
            return None;
        };
        return (!map.is_empty()).then(|| map.keys().cloned().collect());
    }
    let sep = ["||", "|", "\t"].into_iter().find(|sep| s.contains(sep))?;
    let mut fields: Vec<String> = Vec::new();
    for part in s.split(sep) {
        let (key, _) = part.split_once(':')?;
        let key = key.trim();
        let mut chars = key.chars();
        let first = chars.next()?;
        let valid = (first.is_ascii_alphabetic() || first == '_')
            && key.len() <= 40
            && chars.all(|c| c.is_alphanumeric() || c == '_' || " .-/".contains(c));
        if !valid || fields.iter().any(|f| f == key) {
            return None;
        }
        fields.push(key.to_string());
    }
    (fields.len() >= 2).then_some(fields)
}

/// Told only when there is Python source: helpers a folder of contracts does not need are noise
/// to a small model. The REPL's `symbols()` and `imports()` parse the files, so a question about
/// definitions gets an exact answer where a grep counts every mention.
const PYTHON_HELPERS: &str = "\
For Python source the REPL also has (use them, not grep, for questions about definitions, classes, methods and imports):
- `symbols(name=None, kind=None, parent=None, base=None)`: every class, function and method, parsed: dicts with \"path\", \"line\", \"kind\" (\"class\", \"function\" or \"method\"), \"name\", \"parent\" (enclosing class or function), \"bases\" (a class's base classes as written). Filters: `name` is a regex matched at the start of the name, `parent` a class or function name, `base` a base class name. Example: `print(len(symbols(kind=\"method\", parent=\"Parser\")))`.
- `imports(module=None)`: every import statement: dicts with \"path\", \"line\", \"module\", \"names\"; with `module`, only imports of it or its submodules.
";

fn extension(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => format!(".{}", ext.to_ascii_lowercase()),
        _ => "(none)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> (tempfile::TempDir, Folder) {
        let dir = tempfile::tempdir().unwrap();
        for (p, t) in files {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, t).unwrap();
        }
        let f = Folder::load(dir.path()).unwrap();
        (dir, f)
    }

    #[test]
    fn counts_sizes_and_types_without_contents() {
        let (_d, f) = folder(&[("a.md", "secret alpha"), ("b.MD", "xx"), ("sub/c.txt", "ééé"), ("Makefile", "all:")]);
        let s = FolderSummary::of(&f);
        assert_eq!(s.files, 4);
        assert_eq!(s.total_chars, 12 + 2 + 3 + 4);
        assert_eq!(s.estimated_tokens, 21 / 4);
        assert_eq!(s.types[0], (".md".to_string(), 2));
        assert!(s.types.contains(&("(none)".to_string(), 1)));
        let text = s.describe(10);
        assert!(text.contains("4 files, 21 characters"), "{text}");
        assert!(text.contains("  sub/c.txt (3)\n"), "{text}");
        assert!(!text.contains("secret"), "contents never appear: {text}");
        assert!(!text.contains("symbols("), "no code helpers without Python files: {text}");
        let (_d, f) = folder(&[("pkg/a.py", "x = 1")]);
        assert!(FolderSummary::of(&f).describe(10).contains("symbols(name=None, kind=None, parent=None, base=None)"));
    }

    #[test]
    fn record_lines_are_described_by_their_field_names_only() {
        let lines = "Date: Jan 02, 2023 || User: 311 || Text: Great service\n\nDate: Jan 03, 2023 || User: 75 || Text: Never: again\n";
        let (_d, f) = folder(&[("a.txt", lines), ("b.txt", lines), ("c.jsonl", "{\"id\": 1, \"note\": \"x\"}\n")]);
        let s = FolderSummary::of(&f);
        assert_eq!(
            s.records,
            Some(RecordShape { count: 5, fields: vec!["Date".into(), "User".into(), "Text".into()] })
        );
        let text = s.describe(10);
        assert!(text.contains("5 records, one per line, with the fields Date, User, Text: `records()`"), "{text}");
        assert!(!text.contains("Great service") && !text.contains("311"), "values never appear: {text}");

        let (_d, f) = folder(&[("t.csv", "name,amount\nSmith,10\nDoe,5\n")]);
        assert_eq!(
            FolderSummary::of(&f).records,
            Some(RecordShape { count: 2, fields: vec!["name".into(), "amount".into()] })
        );
    }

    #[test]
    fn prose_with_a_few_field_lines_is_not_records() {
        let text = "This lease is made between the parties.\nTerm: 12 months | Fee: 500\nThe tenant pays monthly.\nNotice is 60 days.\n";
        let (_d, f) = folder(&[("lease.txt", text)]);
        let s = FolderSummary::of(&f);
        assert_eq!(s.records, None);
        assert!(!s.describe(10).contains("records()"));
        for line in ["| a | b |", "a || b", "Key: v || Key: w", "1x: a | y: b", "just: one"] {
            assert_eq!(line_fields(line), None, "{line}");
        }
        assert_eq!(line_fields("a: 1\tb: 2"), Some(vec!["a".into(), "b".into()]));
    }

    #[test]
    fn paged_documents_are_described_with_their_formats_and_pages() {
        use quarry_index::{Document, Kind, Layout, PageSpan};
        let page = |number: u32| PageSpan {
            number,
            label: number.to_string(),
            first_line: number as usize,
            line_count: 1,
            ocr: number == 2,
            note: None,
        };
        let pdf =
            Layout { format: Kind::Pdf, extractor: "pdfium".into(), pages: vec![page(1), page(2)], warnings: vec![] };
        let f = Folder::from_parts(
            "/data",
            vec![
                (Document { path: "msa.pdf".into(), text: "one\ntwo\n".into() }, pdf),
                (Document { path: "notes.txt".into(), text: "x".into() }, Layout::text(1)),
            ],
        );
        let text = FolderSummary::of(&f).describe(10);
        assert!(text.contains("Documents: 1 pdf (2 pages), 1 text; 1 scanned page read by OCR."), "{text}");
        assert!(text.contains("read(path, page=N)"), "{text}");
        assert!(text.contains("  msa.pdf (8; 2 pages)\n") && text.contains("  notes.txt (1)\n"), "{text}");
        // A folder of text files is described as before.
        let (_d, f) = folder(&[("a.txt", "x")]);
        assert!(!FolderSummary::of(&f).describe(10).contains("page"));
    }

    #[test]
    fn long_listings_are_cut_with_a_count() {
        let names: Vec<String> = (0..30).map(|i| format!("f{i:02}.txt")).collect();
        let files: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "x")).collect();
        let (_d, f) = folder(&files);
        let text = FolderSummary::of(&f).describe(5);
        assert_eq!(text.matches(".txt (1)").count(), 5);
        assert!(text.contains("... and 25 more files"), "{text}");
    }
}
