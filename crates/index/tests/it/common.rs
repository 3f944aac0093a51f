//! Shared by the test modules: the corpus, the worker binary, text comparison, and a small zip
//! writer for hostile archives.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use quarry_index::extract::{Extractor, ExtractorConfig, WorkerCommand};

/// `$QUARRY_CORPORA/documents`: the real files of issue 14. Without the variable, the first
/// `shared/corpora` beside the checkout or one of its parents (a clone at /work/main finds
/// /work/shared). The tests fail without it rather than pass vacuously.
pub fn documents() -> PathBuf {
    let corpora = std::env::var_os("QUARRY_CORPORA").map(PathBuf::from).or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|a| a.join("shared/corpora"))
            .chain([PathBuf::from("/work/shared/corpora")])
            .find(|c| c.join("documents/real/MANIFEST.tsv").is_file())
    });
    let p = corpora.unwrap_or_default().join("documents");
    assert!(
        p.join("real/MANIFEST.tsv").is_file(),
        "the document corpus is missing at {} (set QUARRY_CORPORA to the folder holding documents/)",
        p.display()
    );
    p.canonicalize().unwrap()
}

pub fn cuad_text() -> PathBuf {
    documents().join("../cuad_v1/full_contract_txt").canonicalize().expect("../shared/corpora/cuad_v1 is missing")
}

pub fn worker() -> WorkerCommand {
    WorkerCommand::bare(PathBuf::from(env!("CARGO_BIN_EXE_quarry-extract-worker")))
}

/// A configuration reading `readable` with this crate's worker; OCR off unless a test wants it
/// (it costs about a second a page).
pub fn config(readable: &[&Path]) -> ExtractorConfig {
    let mut c = ExtractorConfig::readable(readable.iter().map(|p| p.to_path_buf()));
    c.worker = worker();
    c.ocr = false;
    c
}

pub fn extractor(readable: &[&Path]) -> Extractor {
    let e = Extractor::new(config(readable)).expect("the extraction worker starts");
    assert!(
        e.info().pdfium.is_some(),
        "PDFium is not installed: run scripts/install-deps.sh ({:?})",
        e.info().pdfium_missing
    );
    e
}

/// The rows of a TSV with a header, as maps.
pub fn tsv(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| header.iter().map(|h| h.to_string()).zip(l.split('\t').map(str::to_string)).collect())
        .collect()
}

/// Lower-cased words, hyphens removed (pdftotext joins words hyphenated at line ends, the
/// corpus README says), punctuation at word edges dropped.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace())
        .map(|w| w.chars().filter(|c| *c != '-' && *c != '\u{ad}').collect::<String>())
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Bag-of-items F1.
pub fn f1<T: std::hash::Hash + Eq>(a: impl IntoIterator<Item = T>, b: impl IntoIterator<Item = T>) -> f64 {
    let mut count: HashMap<T, i64> = HashMap::new();
    let mut na = 0i64;
    for x in a {
        *count.entry(x).or_default() += 1;
        na += 1;
    }
    let mut nb = 0i64;
    let mut common = 0i64;
    for x in b {
        nb += 1;
        if let Some(c) = count.get_mut(&x) {
            if *c > 0 {
                *c -= 1;
                common += 1;
            }
        }
    }
    if na + nb == 0 {
        return 1.0;
    }
    2.0 * common as f64 / (na + nb) as f64
}

/// Word F1, or character F1 for text that is mostly CJK (no spaces between words).
pub fn text_f1(ours: &str, reference: &str) -> f64 {
    let cjk = reference.chars().filter(|c| matches!(*c as u32, 0x3040..=0x30ff | 0x3400..=0x9fff)).count();
    if cjk * 5 > reference.chars().filter(|c| !c.is_whitespace()).count() {
        let chars = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<Vec<_>>();
        f1(chars(ours), chars(reference))
    } else {
        f1(words(ours), words(reference))
    }
}

/// `pdftotext` (poppler) pages of a PDF, or `None` when it fails on the file.
pub fn pdftotext(path: &Path) -> Option<Vec<String>> {
    let out = std::process::Command::new("pdftotext")
        .arg("-q")
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext is installed (scripts/install-deps.sh)");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut pages: Vec<String> = text.split('\u{c}').map(str::to_string).collect();
    if pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    Some(pages)
}

/// One entry of a hand-made zip: its bytes come from `data` repeated `repeat` times, so a
/// 1 GiB entry needs no 1 GiB buffer. `declared` overrides the size written in the headers
/// (a lying archive).
pub struct Entry<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
    pub repeat: u64,
    pub declared: Option<u32>,
}

impl<'a> Entry<'a> {
    pub fn new(name: &'a str, data: &'a [u8]) -> Entry<'a> {
        Entry { name, data, repeat: 1, declared: None }
    }
}

/// Writes a deflated zip (ZIP64 is not needed: entries stay under 4 GiB).
pub fn write_zip(path: &Path, entries: &[Entry<'_>]) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut offset = 0u64;
    let mut central = Vec::new();
    for e in entries {
        let mut crc = flate2::Crc::new();
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        for _ in 0..e.repeat {
            crc.update(e.data);
            enc.write_all(e.data).unwrap();
        }
        let packed = enc.finish().unwrap();
        let size = e.declared.unwrap_or((e.data.len() as u64 * e.repeat) as u32);
        let name = e.name.as_bytes();
        let mut local = Vec::new();
        local.extend_from_slice(&0x04034b50u32.to_le_bytes());
        local.extend_from_slice(&20u16.to_le_bytes()); // version
        local.extend_from_slice(&0u16.to_le_bytes()); // flags
        local.extend_from_slice(&8u16.to_le_bytes()); // deflate
        local.extend_from_slice(&0u32.to_le_bytes()); // time, date
        local.extend_from_slice(&crc.sum().to_le_bytes());
        local.extend_from_slice(&(packed.len() as u32).to_le_bytes());
        local.extend_from_slice(&size.to_le_bytes());
        local.extend_from_slice(&(name.len() as u16).to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes());
        local.extend_from_slice(name);
        out.write_all(&local).unwrap();
        out.write_all(&packed).unwrap();
        central.extend_from_slice(&0x02014b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&8u16.to_le_bytes());
        central.extend_from_slice(&0u32.to_le_bytes());
        central.extend_from_slice(&crc.sum().to_le_bytes());
        central.extend_from_slice(&(packed.len() as u32).to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0u8; 8]); // extra, comment, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&(offset as u32).to_le_bytes());
        central.extend_from_slice(name);
        offset += (local.len() + packed.len()) as u64;
    }
    out.write_all(&central).unwrap();
    let mut end = Vec::new();
    end.extend_from_slice(&0x06054b50u32.to_le_bytes());
    end.extend_from_slice(&[0u8; 4]);
    end.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    end.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    end.extend_from_slice(&(central.len() as u32).to_le_bytes());
    end.extend_from_slice(&(offset as u32).to_le_bytes());
    end.extend_from_slice(&0u16.to_le_bytes());
    out.write_all(&end).unwrap();
    out.flush().unwrap();
}

/// A minimal DOCX whose body is `body_xml` (paragraph XML).
pub fn write_docx(path: &Path, body_xml: &str) {
    let doc = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body_xml}</w:body></w:document>"#
    );
    write_zip(
        path,
        &[
            Entry::new("[Content_Types].xml", CONTENT_TYPES.as_bytes()),
            Entry::new("_rels/.rels", ROOT_RELS_DOCX.as_bytes()),
            Entry::new("word/document.xml", doc.as_bytes()),
        ],
    );
}

pub const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>"#;
pub const ROOT_RELS_DOCX: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#;

/// A minimal one-page PDF with `content` as its page's content stream (uncompressed when
/// `filter` is empty) and `extra_resource`, when given, written directly into the page's
/// resources as `/Extra ...` (so reading the page parses it). Offsets in the xref are exact.
pub fn write_pdf(path: &Path, content: &[u8], filter: &str, extra_resource: Option<&[u8]>) {
    let mut objs: Vec<Vec<u8>> = Vec::new();
    objs.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    objs.push(b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec());
    let mut page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >>".to_vec();
    if let Some(x) = extra_resource {
        page.extend_from_slice(b" /Extra ");
        page.extend_from_slice(x);
    }
    page.extend_from_slice(b" >> /Contents 4 0 R >>");
    objs.push(page);
    let mut stream = format!(
        "<< /Length {}{} >>\nstream\n",
        content.len(),
        if filter.is_empty() { String::new() } else { format!(" /Filter /{filter}") }
    )
    .into_bytes();
    stream.extend_from_slice(content);
    stream.extend_from_slice(b"\nendstream");
    objs.push(stream);
    objs.push(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec());
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objs.len() + 1).as_bytes(),
    );
    std::fs::write(path, out).unwrap();
}

/// A page content stream showing `text` at the top left.
pub fn show(text: &str) -> Vec<u8> {
    format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET").into_bytes()
}

/// `rg -uuu --sort path --json` over `dir`: (path, line, match ranges) of every matching line.
pub fn rg(dir: &std::path::Path, flags: &[&str], pattern: &str) -> Vec<(String, usize, Vec<[usize; 2]>)> {
    let out = std::process::Command::new("rg")
        .args(["-uuu", "--sort", "path", "--json"])
        .args(flags)
        .arg("--")
        .arg(pattern)
        .arg(".")
        .current_dir(dir)
        .output()
        .expect("ripgrep (rg) is needed for this test: apt-get install ripgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "match")
        .map(|v| {
            let d = &v["data"];
            let path = d["path"]["text"].as_str().unwrap().trim_start_matches("./").to_string();
            let ranges = d["submatches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| [m["start"].as_u64().unwrap() as usize, m["end"].as_u64().unwrap() as usize])
                .collect();
            (path, d["line_number"].as_u64().unwrap() as usize, ranges)
        })
        .collect()
}

/// A folder holding each indexed file's text under its path: what `rg` searches to check `grep`.
pub fn mirror(library: &quarry_index::Library, row: &quarry_index::collection::CollectionRow) -> tempfile::TempDir {
    let mirror = tempfile::tempdir().unwrap();
    for f in library.snapshot(row).unwrap().into_iter().filter(|f| f.status == "indexed") {
        let path = mirror.path().join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, f.text).unwrap();
    }
    mirror
}
