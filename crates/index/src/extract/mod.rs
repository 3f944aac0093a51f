//! Reading one file's text, page by page: PDF, Word, PowerPoint, Excel, OpenDocument, CSV, HTML,
//! EPUB, email, RTF, and text in any encoding (issue 14).
//!
//! The parsers behind these formats crash, hang and allocate gigabytes on hostile files
//! (notes/extraction.md §2.3, §4: a 1.5 MB flate bomb took PDFium to 2 GB; 20,000 nested arrays
//! crashed pdf_oxide with SIGSEGV), and `catch_unwind` stops none of that. So the functions here
//! run in a confined worker process ([`worker`], `quarry worker extract`), and the app talks to it
//! through an [`Extractor`] ([`host`]), which gives a file that kills or stalls the worker a
//! reason and restarts it.
//!
//! - [`Extracted`]: what a file holds — its [`Kind`], the engine that read it, [`Page`]s (each
//!   with its label, text and line span) and warnings.
//! - [`extract_file`]: in-process extraction of one file (what the worker runs).
//! - [`Extractor`]: the host side: one confined worker, per-file time limit, restart, OCR of
//!   scanned pages with progress, cancellation.
//! - [`bench`]: pages/s and MB/s by format, next to `pdftotext` on the same PDFs.
//!
//! The file type comes from the content ([`detect`]), not the extension; the extension only
//! refines text (CSV/TSV) and names what is not supported.
//!
//! ```no_run
//! use quarry_index::extract::{Extractor, ExtractorConfig};
//! let mut extractor = Extractor::new(ExtractorConfig::readable(["contracts"]))?;
//! let doc = extractor.extract("contracts/msa.pdf".as_ref(), &mut |_| {})?;
//! for page in &doc.pages {
//!     println!("p. {} ({} lines)", page.label, page.line_count);
//! }
//! # Ok::<(), quarry_index::Error>(())
//! ```

pub mod bench;
pub mod detect;
pub mod host;
mod html;
mod mail;
pub mod ocr;
mod odf;
mod ooxml;
pub mod pdf;
pub mod pdfium;
pub mod protocol;
pub mod report;
mod rtf;
mod sheet;
pub mod text;
pub mod worker;
mod xml;
pub mod zipcheck;

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use detect::Detected;
pub use host::{Event, Extractor, ExtractorConfig, WorkerCommand};

/// The formats Quarry reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Pdf,
    Docx,
    Pptx,
    Xlsx,
    Xls,
    Odt,
    Odp,
    Ods,
    Csv,
    Tsv,
    Html,
    Epub,
    Eml,
    Mbox,
    Rtf,
    Text,
}

impl Kind {
    pub const ALL: [Kind; 16] = [
        Kind::Pdf,
        Kind::Docx,
        Kind::Pptx,
        Kind::Xlsx,
        Kind::Xls,
        Kind::Odt,
        Kind::Odp,
        Kind::Ods,
        Kind::Csv,
        Kind::Tsv,
        Kind::Html,
        Kind::Epub,
        Kind::Eml,
        Kind::Mbox,
        Kind::Rtf,
        Kind::Text,
    ];

    /// The short name used in JSON, reports and the folder description: `pdf`, `docx`, ...
    pub fn name(self) -> &'static str {
        match self {
            Kind::Pdf => "pdf",
            Kind::Docx => "docx",
            Kind::Pptx => "pptx",
            Kind::Xlsx => "xlsx",
            Kind::Xls => "xls",
            Kind::Odt => "odt",
            Kind::Odp => "odp",
            Kind::Ods => "ods",
            Kind::Csv => "csv",
            Kind::Tsv => "tsv",
            Kind::Html => "html",
            Kind::Epub => "epub",
            Kind::Eml => "eml",
            Kind::Mbox => "mbox",
            Kind::Rtf => "rtf",
            Kind::Text => "text",
        }
    }

    /// Whether a citation names a page (`msa.pdf p. 12, lines 3-5`) rather than just lines
    /// (`notes.txt:12`): true for every format whose unit is a page, slide, sheet, section,
    /// chapter or message.
    pub fn is_paged(self) -> bool {
        !matches!(self, Kind::Text | Kind::Csv | Kind::Tsv | Kind::Html | Kind::Rtf)
    }

    /// What one page of this format is, for descriptions: "page", "slide", "sheet", ...
    pub fn unit(self) -> &'static str {
        match self {
            Kind::Pdf | Kind::Odt => "page",
            Kind::Docx => "section",
            Kind::Pptx | Kind::Odp => "slide",
            Kind::Xlsx | Kind::Xls | Kind::Ods | Kind::Csv | Kind::Tsv => "sheet",
            Kind::Epub => "chapter",
            Kind::Eml | Kind::Mbox => "part",
            Kind::Html | Kind::Rtf | Kind::Text => "text",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One page of a document: a PDF page, a slide, a sheet, a Word section, an EPUB chapter, a
/// mail message or attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// 1-based position in the document (the physical page for a PDF).
    pub number: u32,
    /// What the document calls it: a PDF page label ("iv", "12"), a sheet's name, an
    /// attachment's name; the number when it has no name.
    pub label: String,
    /// The text, every line ended by `\n` (so pages concatenate at line boundaries).
    pub text: String,
    /// The 1-based line of the document's text where this page starts.
    #[serde(default)]
    pub first_line: usize,
    /// How many lines the page has (0 for an empty page).
    #[serde(default)]
    pub line_count: usize,
    /// The text was read by OCR from the rendered page.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ocr: bool,
    /// Why the page has no text, when it has none: "no text layer (install tesseract-ocr to
    /// read scanned pages)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Set by the worker on a PDF page with no text but with images: OCR would help.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_ocr: bool,
}

impl Page {
    pub fn new(number: u32, label: impl Into<String>, text: impl Into<String>) -> Page {
        Page {
            number,
            label: label.into(),
            text: text.into(),
            first_line: 0,
            line_count: 0,
            ocr: false,
            note: None,
            needs_ocr: false,
        }
    }

    /// The page's lines, without their `\n`.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.lines()
    }
}

/// What Quarry read from one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extracted {
    pub kind: Kind,
    /// The engine that read it: "pdfium 8149", "pdf_oxide 0.3.78", "docx", "calamine 0.38", ...
    pub extractor: String,
    pub pages: Vec<Page>,
    /// Things the reader should know: replaced bytes, a fallback engine, pages cut, a file that
    /// changed while it was read.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Extracted {
    pub fn new(kind: Kind, extractor: impl Into<String>) -> Extracted {
        Extracted { kind, extractor: extractor.into(), pages: Vec::new(), warnings: Vec::new() }
    }

    /// Adds a page numbered after the last one.
    pub fn push(&mut self, label: impl Into<String>, text: impl Into<String>) -> &mut Page {
        let number = self.pages.len() as u32 + 1;
        self.pages.push(Page::new(number, label, text));
        self.pages.last_mut().expect("just pushed")
    }

    /// The pages' text concatenated: the document's text, line for line.
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(self.pages.iter().map(|p| p.text.len()).sum());
        for p in &self.pages {
            s.push_str(&p.text);
        }
        s
    }

    pub fn chars(&self) -> usize {
        self.pages.iter().map(|p| p.text.chars().count()).sum()
    }

    /// Whether any page has text.
    pub fn has_text(&self) -> bool {
        self.pages.iter().any(|p| p.line_count > 0)
    }

    /// Cleans every page's text ([`clean_text`]), cuts the whole at `max_bytes` with a warning,
    /// and sets each page's line span. Called once extraction (and OCR) is done.
    pub fn finish(&mut self, max_bytes: usize) {
        let mut total = 0usize;
        let mut cut_at: Option<u32> = None;
        for page in &mut self.pages {
            if cut_at.is_some() {
                page.text.clear();
                continue;
            }
            // Plain text stays as it is on disk, so `path:line` matches what an editor shows;
            // extracted formats are normalised.
            if self.kind != Kind::Text {
                page.text = clean_text(&page.text);
            }
            if total + page.text.len() > max_bytes {
                let keep = floor_line(&page.text, max_bytes.saturating_sub(total));
                page.text.truncate(keep);
                cut_at = Some(page.number);
            }
            total += page.text.len();
        }
        if let Some(n) = cut_at {
            let dropped = self.pages.iter().filter(|p| p.number > n).count();
            self.pages.retain(|p| p.number <= n);
            self.warnings.push(format!(
                "the text was cut at {} MiB, on page {n}{}",
                max_bytes >> 20,
                if dropped > 0 { format!("; {dropped} later pages were not read") } else { String::new() }
            ));
        }
        let mut line = 1usize;
        for page in &mut self.pages {
            page.first_line = line;
            page.line_count = page.text.lines().count();
            line += page.line_count;
        }
    }
}

/// The largest prefix of `s` no longer than `max` bytes that ends at a line end.
fn floor_line(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    s[..max].rfind('\n').map_or(0, |i| i + 1)
}

/// Normalises extracted text: `\r\n` and `\r` become `\n`, form feeds and other control
/// characters (but tabs) go, trailing spaces of each line go, runs of more than two blank lines
/// shrink to two, and the text ends with exactly one `\n` (or is empty).
pub fn clean_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    let mut blank_run = 0usize;
    let mut any = false;
    let s = s.replace("\r\n", "\n");
    for raw in s.split(['\n', '\r', '\u{c}', '\u{2028}', '\u{2029}']) {
        let line: String = if raw.chars().any(|c| (c.is_control() && c != '\t') || c == '\u{feff}') {
            raw.chars().filter(|&c| !(c.is_control() && c != '\t') && c != '\u{feff}').collect()
        } else {
            raw.to_string()
        };
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if any {
            for _ in 0..blank_run.min(2) {
                out.push('\n');
            }
        }
        blank_run = 0;
        any = true;
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Options of one extraction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Options {
    /// Mark PDF pages without text as needing OCR ([`Page::needs_ocr`]); the host runs it.
    pub ocr: bool,
    /// Input size caps (bytes): plain text, and everything else.
    pub max_text_file_bytes: u64,
    pub max_document_bytes: u64,
    /// The extracted text's cap; the rest is cut with a warning.
    pub max_output_bytes: usize,
    /// Zip-based formats are refused beyond these (checked before anything is inflated).
    pub zip: zipcheck::ZipLimits,
    /// Spreadsheet cells read per file; the rest is cut with a warning.
    pub max_cells: u64,
    /// How deep attachments inside mail (and mail inside attachments) are read.
    pub max_depth: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ocr: true,
            max_text_file_bytes: crate::MAX_FILE_BYTES,
            max_document_bytes: 512 << 20,
            max_output_bytes: 32 << 20,
            zip: zipcheck::ZipLimits::default(),
            max_cells: 5_000_000,
            max_depth: 3,
        }
    }
}

/// Why a file gives no text. One sentence, without the file's name (the caller adds it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable(pub String);

impl Unreadable {
    pub fn new(reason: impl Into<String>) -> Unreadable {
        Unreadable(reason.into())
    }
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Outcome = std::result::Result<Extracted, Unreadable>;

/// How many bytes are sniffed for the type (infer's OOXML check needs about 6,000).
pub const SNIFF_BYTES: usize = 16 << 10;

/// Extracts one file in this process: sniffs its type from the first bytes, checks its size
/// for that type, reads it and hands it to the format's reader. Panics in a reader are caught
/// and become a reason; crashes are the worker's business.
pub fn extract_file(path: &Path, options: &Options, pdfium: Option<&pdfium::Engine>) -> Outcome {
    let mut file = std::fs::File::open(path).map_err(|e| io_reason(&e))?;
    let meta = file.metadata().map_err(|e| io_reason(&e))?;
    if meta.is_dir() {
        return Err(Unreadable::new("a folder, not a file"));
    }
    if !meta.is_file() {
        return Err(Unreadable::new("not a regular file (a device, socket or pipe)"));
    }
    let len = meta.len();
    let mut head = vec![0u8; SNIFF_BYTES.min(len as usize)];
    file.read_exact(&mut head).map_err(|e| io_reason(&e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let detected = detect::sniff(&head, &name, len);
    let kind = match detected {
        Detected::Kind(k) => k,
        Detected::Zip => {
            drop(head);
            let bytes = read_rest(file, len, options.max_document_bytes, "document")?;
            return finish_checked(path, &meta, extract_zip(&bytes, &name, options, pdfium, 0));
        }
        Detected::Cfb => {
            drop(head);
            let bytes = read_rest(file, len, options.max_document_bytes, "document")?;
            let kind = detect::cfb_kind(&bytes, &name).map_err(Unreadable)?;
            return finish_checked(path, &meta, extract_kind(kind, &bytes, &name, options, pdfium, 0));
        }
        Detected::Unsupported(reason) => return Err(Unreadable(reason)),
    };
    let cap = if matches!(kind, Kind::Text | Kind::Csv | Kind::Tsv | Kind::Html | Kind::Rtf) {
        options.max_text_file_bytes
    } else {
        options.max_document_bytes
    };
    drop(head);
    let what = if cap == options.max_text_file_bytes { "text" } else { "document" };
    let bytes = read_rest(file, len, cap, what)?;
    finish_checked(path, &meta, extract_kind(kind, &bytes, &name, options, pdfium, 0))
}

/// Reads the whole file (from the start) as it is now, up to `cap` bytes.
fn read_rest(mut file: std::fs::File, len: u64, cap: u64, what: &str) -> std::result::Result<Vec<u8>, Unreadable> {
    use std::io::Seek;
    if len > cap {
        return Err(Unreadable::new(format!(
            "too large: {} ({} files are read up to {})",
            human_bytes(len),
            what,
            human_bytes(cap)
        )));
    }
    file.seek(std::io::SeekFrom::Start(0)).map_err(|e| io_reason(&e))?;
    let mut bytes = Vec::with_capacity(len as usize);
    // `take(len)`: a file that grows while it is read is read as it was when opened.
    file.take(len).read_to_end(&mut bytes).map_err(|e| io_reason(&e))?;
    Ok(bytes)
}

/// Adds a warning when the file changed while it was read.
fn finish_checked(path: &Path, before: &std::fs::Metadata, outcome: Outcome) -> Outcome {
    let mut ex = outcome?;
    if let Ok(after) = std::fs::metadata(path) {
        if after.len() != before.len() || after.modified().ok() != before.modified().ok() {
            ex.warnings.push(format!(
                "the file changed while it was read ({} then {}); this is the text of its first {}",
                human_bytes(before.len()),
                human_bytes(after.len()),
                human_bytes(before.len())
            ));
        }
    }
    Ok(ex)
}

/// Extracts bytes of a known kind (a file, or an attachment at `depth`).
pub fn extract_kind(
    kind: Kind,
    bytes: &[u8],
    name: &str,
    options: &Options,
    pdfium: Option<&pdfium::Engine>,
    depth: u32,
) -> Outcome {
    let run = || -> Outcome {
        let mut ex = match kind {
            Kind::Pdf => pdf::extract(bytes, options, pdfium)?,
            Kind::Docx => ooxml::docx(bytes, options)?,
            Kind::Pptx => ooxml::pptx(bytes, options)?,
            Kind::Xlsx | Kind::Xls => sheet::workbook(kind, bytes, options)?,
            Kind::Ods => odf::ods(bytes, options)?,
            Kind::Odt => odf::odt(bytes, options)?,
            Kind::Odp => odf::odp(bytes, options)?,
            Kind::Csv | Kind::Tsv => sheet::delimited(kind, bytes, name, options)?,
            Kind::Html => html::html(bytes)?,
            Kind::Epub => html::epub(bytes, options)?,
            Kind::Eml => mail::eml(bytes, options, pdfium, depth)?,
            Kind::Mbox => mail::mbox(bytes, options, pdfium, depth)?,
            Kind::Rtf => rtf::rtf(bytes)?,
            Kind::Text => {
                let d = text::decode(bytes);
                let mut ex = Extracted::new(Kind::Text, "text");
                ex.warnings.extend(d.warning());
                ex.push("1", d.text);
                ex
            }
        };
        ex.finish(options.max_output_bytes);
        Ok(ex)
    };
    // Cheap cases only: a panic in a reader (html2text and mail-parser have had them, notes
    // §3.3, §3.5). Crashes, aborts and hangs are what the worker process is for.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(outcome) => outcome,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            Err(Unreadable::new(format!(
                "the {} reader failed on this file (panic: {})",
                kind.name(),
                first_line(&msg)
            )))
        }
    }
}

/// A zip of unknown purpose: decide by its entries, then extract.
fn extract_zip(bytes: &[u8], name: &str, options: &Options, pdfium: Option<&pdfium::Engine>, depth: u32) -> Outcome {
    let kind = zipcheck::kind_of(bytes, name, &options.zip)?;
    extract_kind(kind, bytes, name, options, pdfium, depth)
}

/// Extracts bytes of unknown type (an attachment): sniff, then extract.
pub fn extract_bytes(
    bytes: &[u8],
    name: &str,
    options: &Options,
    pdfium: Option<&pdfium::Engine>,
    depth: u32,
) -> Outcome {
    match detect::sniff(&bytes[..bytes.len().min(SNIFF_BYTES)], name, bytes.len() as u64) {
        Detected::Kind(kind) => extract_kind(kind, bytes, name, options, pdfium, depth),
        Detected::Zip => extract_zip(bytes, name, options, pdfium, depth),
        Detected::Cfb => {
            let kind = detect::cfb_kind(bytes, name).map_err(Unreadable)?;
            extract_kind(kind, bytes, name, options, pdfium, depth)
        }
        Detected::Unsupported(reason) => Err(Unreadable(reason)),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

/// One sentence for an I/O error while opening or reading a file.
pub fn io_reason(e: &std::io::Error) -> Unreadable {
    use std::io::ErrorKind;
    let reason = match e.kind() {
        ErrorKind::NotFound => "the file is gone (deleted or moved before it could be read)".to_string(),
        ErrorKind::PermissionDenied => {
            "permission denied: the file may not be read (check its permissions)".to_string()
        }
        _ if e.raw_os_error() == Some(libc::ELOOP) => "a symbolic link loop".to_string(),
        _ => format!("could not be read: {e}"),
    };
    Unreadable(reason)
}

/// "1.5 MB", "2.0 GB": sizes as people read them (decimal units).
pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.0} KB", n / 1e3)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_normalises_lines() {
        assert_eq!(clean_text("a\r\nb\rc\u{c}d  \n\n\n\n\ne\x01f"), "a\nb\nc\nd\n\n\nef\n");
        assert_eq!(clean_text("\n\n  \n"), "");
        assert_eq!(clean_text("x"), "x\n");
    }

    #[test]
    fn finish_sets_line_spans_and_cuts_at_the_cap() {
        let mut ex = Extracted::new(Kind::Pdf, "test");
        ex.push("i", "one\ntwo");
        ex.push("ii", "");
        ex.push("1", "three\n");
        ex.finish(1 << 20);
        let spans: Vec<_> = ex.pages.iter().map(|p| (p.first_line, p.line_count)).collect();
        assert_eq!(spans, [(1, 2), (3, 0), (3, 1)]);
        assert_eq!(ex.text(), "one\ntwo\nthree\n");

        let mut ex = Extracted::new(Kind::Pdf, "test");
        ex.push("1", "aaaa\nbbbb\n");
        ex.push("2", "cccc\n");
        ex.finish(7);
        assert_eq!(ex.text(), "aaaa\n");
        assert_eq!(ex.pages.len(), 1);
        assert!(ex.warnings[0].contains("1 later pages were not read"), "{:?}", ex.warnings);
    }
}
