//! What `quarry extract FILE... [--json] [--pages A-B]` prints: the text by page, or one JSON
//! object per file with its pages, labels, warnings and the extractor used. It doubles as the
//! way to debug an answer: this is exactly what the model was given.

use std::path::Path;

use super::Extracted;

/// `--pages A-B` (1-based physical pages, inclusive; `A` alone is one page, `A-` runs to the
/// end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRange {
    pub first: u32,
    pub last: Option<u32>,
}

impl PageRange {
    pub fn contains(&self, number: u32) -> bool {
        number >= self.first && self.last.is_none_or(|l| number <= l)
    }
}

impl std::str::FromStr for PageRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("--pages takes A-B, A- or A (1-based page numbers), not {s:?}");
        let num = |t: &str| t.trim().parse::<u32>().ok().filter(|&n| n >= 1);
        let range = match s.split_once('-') {
            None => {
                let n = num(s).ok_or_else(bad)?;
                PageRange { first: n, last: Some(n) }
            }
            Some((a, "")) => PageRange { first: num(a).ok_or_else(bad)?, last: None },
            Some((a, b)) => PageRange { first: num(a).ok_or_else(bad)?, last: Some(num(b).ok_or_else(bad)?) },
        };
        if range.last.is_some_and(|l| l < range.first) {
            return Err(bad());
        }
        Ok(range)
    }
}

/// The text by page: a header line per page (`==> msa.pdf p. 12 (page 14 of 40, 38 lines)`),
/// then its lines; a page without text shows why.
pub fn text(path: &Path, ex: &Extracted, pages: Option<PageRange>) -> String {
    let mut out = String::new();
    let total = ex.pages.len();
    for p in ex.pages.iter().filter(|p| pages.is_none_or(|r| r.contains(p.number))) {
        let mut header =
            format!("==> {} p. {} (page {} of {total}, {} lines", path.display(), p.label, p.number, p.line_count);
        if p.ocr {
            header.push_str(", OCR");
        }
        header.push(')');
        if let Some(note) = &p.note {
            header.push_str(&format!(": {note}"));
        }
        out.push_str(&header);
        out.push('\n');
        out.push_str(&p.text);
    }
    out
}

/// One JSON object: `{"path", "kind", "extractor", "pages": [{"number", "label", "first_line",
/// "line_count", "text", "ocr"?, "note"?}], "warnings"}`.
pub fn json(path: &Path, ex: &Extracted, pages: Option<PageRange>) -> serde_json::Value {
    let chosen: Vec<&super::Page> = ex.pages.iter().filter(|p| pages.is_none_or(|r| r.contains(p.number))).collect();
    serde_json::json!({
        "path": path.to_string_lossy(),
        "kind": ex.kind,
        "extractor": ex.extractor,
        "page_count": ex.pages.len(),
        "pages": chosen,
        "warnings": ex.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Kind;

    #[test]
    fn page_ranges_and_output() {
        assert_eq!("3-5".parse::<PageRange>().unwrap(), PageRange { first: 3, last: Some(5) });
        assert_eq!("7".parse::<PageRange>().unwrap(), PageRange { first: 7, last: Some(7) });
        assert_eq!("2-".parse::<PageRange>().unwrap(), PageRange { first: 2, last: None });
        assert!("5-3".parse::<PageRange>().is_err());
        assert!("0-3".parse::<PageRange>().is_err());
        assert!("x".parse::<PageRange>().unwrap_err().contains("--pages takes A-B"));

        let mut ex = Extracted::new(Kind::Pdf, "pdfium 8149");
        ex.push("i", "front\n");
        ex.push("1", "body one\nbody two\n").ocr = true;
        ex.push("2", "").note = Some("no text layer (OCR is turned off)".into());
        ex.finish(1 << 20);
        let t = text(Path::new("a.pdf"), &ex, Some("2-3".parse().unwrap()));
        assert_eq!(
            t,
            "==> a.pdf p. 1 (page 2 of 3, 2 lines, OCR)\nbody one\nbody two\n\
             ==> a.pdf p. 2 (page 3 of 3, 0 lines): no text layer (OCR is turned off)\n"
        );
        let j = json(Path::new("a.pdf"), &ex, Some("1".parse().unwrap()));
        assert_eq!(j["pages"].as_array().unwrap().len(), 1);
        assert_eq!(j["pages"][0]["label"], "i");
        assert_eq!(j["page_count"], 3);
        assert_eq!(j["kind"], "pdf");
    }
}
