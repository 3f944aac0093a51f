//! The real files of `../shared/corpora/documents` (issue 14, item 6): text PDFs against
//! `pdftotext`, the CUAD data room against its source text, scanned pages by OCR, and every
//! file of the corpus either read or given its reason.

use std::path::Path;

use quarry_index::extract::{Event, Extractor};
use quarry_index::{Error, Folder, LoadOptions};

use crate::common::{self, documents, f1, text_f1, words};

/// Word-level F1 >= 0.95 against `pdftotext` on every text PDF of the corpus (character F1 for
/// the Japanese one), with the same page count.
#[test]
fn text_pdfs_match_pdftotext() {
    let real = documents().join("real");
    let rows = common::tsv(&real.join("MANIFEST.tsv"));
    let pdfs: Vec<String> = rows
        .iter()
        .filter(|r| r["format"] == "pdf" && r["encrypted"] == "no" && r["pdftotext_text"] == "yes")
        .map(|r| r["file"].clone())
        .collect();
    assert!(pdfs.len() >= 18, "{pdfs:?}");
    // pdftotext on its own thread: it is the slow side (20 s for the 2,415-page manual).
    let reference = std::thread::scope(|s| {
        let handle = s.spawn(|| pdfs.iter().map(|f| common::pdftotext(&real.join(f))).collect::<Vec<_>>());
        let mut ex = common::extractor(&[&real]);
        let ours: Vec<_> = pdfs.iter().map(|f| ex.extract(&real.join(f), &mut |_| {}).unwrap()).collect();
        (ours, handle.join().unwrap())
    });
    let (ours, theirs) = reference;
    let mut failures = Vec::new();
    for ((file, ex), reference) in pdfs.iter().zip(&ours).zip(&theirs) {
        let reference = reference.as_ref().unwrap_or_else(|| panic!("pdftotext fails on {file}"));
        let score = text_f1(&ex.text(), &reference.concat());
        eprintln!("{file}: {} pages, F1 {score:.3} ({})", ex.pages.len(), ex.extractor);
        if score < 0.95 || ex.pages.len() != reference.len() {
            failures.push(format!("{file}: F1 {score:.3}, {} pages against {}", ex.pages.len(), reference.len()));
        }
        assert!(ex.extractor.starts_with("pdfium"), "{file} was read by {}", ex.extractor);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Page labels come from the file, not the page's position.
#[test]
fn pdf_pages_keep_their_labels() {
    let real = documents().join("real");
    let mut ex = common::extractor(&[&real]);
    let doc = ex.extract(&real.join("pdf/r-doc-pdf__R-intro.pdf"), &mut |_| {}).unwrap();
    let labels: Vec<&str> = doc.pages.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(doc.pages.len(), 113);
    // The R manuals label their title pages T-1, T-2, then i, ii, ... and 1 at chapter 1.
    assert_eq!(&labels[..7], ["T-1", "T-2", "i", "ii", "iii", "iv", "1"], "{labels:?}");
    assert_eq!(labels.last(), Some(&"107"));
    // Each page's span is where its text is in the document's text.
    let text = doc.text();
    let lines: Vec<&str> = text.lines().collect();
    for p in &doc.pages {
        let own: Vec<&str> = p.text.lines().collect();
        assert_eq!(&lines[p.first_line - 1..p.first_line - 1 + p.line_count], &own[..], "page {}", p.label);
    }
}

/// The CUAD data room: every PDF and DOCX against the contract text it was made from.
#[test]
fn cuad_dataroom_matches_its_source_text() {
    let room = documents().join("dataroom");
    let source = common::cuad_text();
    let rows = common::tsv(&room.join("SOURCES.tsv"));
    assert_eq!(rows.len(), 36);
    let mut ex = common::extractor(&[&room]);
    let mut failures = Vec::new();
    let (mut pdf, mut docx) = (0, 0);
    for r in &rows {
        let doc = ex.extract(&room.join(&r["file"]), &mut |_| {}).unwrap();
        let truth = std::fs::read_to_string(source.join(&r["cuad_source_txt"])).unwrap();
        let score = f1(words(&doc.text()), words(&truth));
        match doc.kind.name() {
            "pdf" => {
                pdf += 1;
                assert!(doc.pages.len() > 1, "{}: {} pages", r["file"], doc.pages.len());
            }
            "docx" => docx += 1,
            k => panic!("{} read as {k}", r["file"]),
        }
        if score < 0.95 {
            failures.push(format!("{}: F1 {score:.3}", r["file"]));
        }
    }
    assert_eq!((pdf, docx), (18, 18));
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Scanned pages (no text layer) are read by Tesseract, with one progress event per page;
/// the known words are the ones visible on the scans.
#[test]
fn scanned_pages_are_read_by_ocr() {
    let pdfs = documents().join("real/pdf");
    let mut config = common::config(&[&pdfs]);
    config.ocr = true;
    let mut ex = Extractor::new(config).unwrap();
    for (file, known) in [
        ("ocrmypdf__c03-29.pdf", &["Miss Watson", "going-over in the morning", "the widow"][..]),
        (
            "ocrmypdf__linn.pdf",
            &["LinnSequencer", "32 Track MIDI Sequence Recorder", "state-of-the-art composition"][..],
        ),
        ("ocrmypdf__2400dpi.pdf", &["Linzensoep"][..]),
    ] {
        let mut events = Vec::new();
        let doc = ex.extract(&pdfs.join(file), &mut |e| events.push(e)).unwrap();
        assert!(doc.pages[0].ocr, "{file}");
        assert!(doc.extractor.contains("tesseract"), "{}", doc.extractor);
        let text = doc.text();
        for k in known {
            assert!(text.contains(k), "{file}: {k:?} not in {text:?}");
        }
        assert_eq!(events, [Event::OcrPage { page: 1, done: 0, of: 1 }], "{file}");
    }
}

/// OCR turned off, or Tesseract absent: the page says why it has no text.
#[test]
fn scanned_pages_without_ocr_say_why() {
    let pdfs = documents().join("real/pdf");
    let file = pdfs.join("ocrmypdf__c03-29.pdf");
    let mut ex = common::extractor(&[&pdfs]);
    let doc = ex.extract(&file, &mut |_| {}).unwrap();
    assert_eq!(doc.pages[0].note.as_deref(), Some("no text layer (OCR is turned off)"));
    let mut config = common::config(&[&pdfs]);
    config.ocr = true;
    config.tesseract = "/nonexistent/tesseract".into();
    let mut ex = Extractor::new(config).unwrap();
    let doc = ex.extract(&file, &mut |_| {}).unwrap();
    assert_eq!(doc.pages[0].note.as_deref(), Some("no text layer (install tesseract-ocr to read scanned pages)"));
    assert!(!doc.has_text());
}

/// Every file of the corpus is read, or gets its reason (`quarry extract` over the corpus, OCR
/// off: the scans say so). The files without text and their reasons are pinned here.
#[test]
fn every_corpus_file_is_read_or_gives_its_reason() {
    let root = documents();
    let options = LoadOptions { extractor: Some(common::config(&[])), workers: 2 };
    let folder = Folder::load_with(&root, &options, &|_| {}, None).unwrap();
    let expected: &[(&str, &str)] = &[
        ("derived/docx/python-docx-test__TRUNCATED-70pct.docx", "a damaged zip archive"),
        ("derived/pdf/reportlab-userguide__TRUNCATED-5pct.pdf", "a damaged PDF: it is cut short (no end-of-file marker)"),
        ("real/msg/mail-parser__mail_outlook_1.msg", "unsupported format: Outlook .msg"),
        ("real/pdf/ocrmypdf__2400dpi.pdf", "no text layer (OCR is turned off)"),
        ("real/pdf/ocrmypdf__c03-29.pdf", "no text layer (OCR is turned off)"),
        ("real/pdf/ocrmypdf__cardinal.pdf", "no text layer (OCR is turned off), on all 4 pages"),
        ("real/pdf/ocrmypdf__enormous.pdf", "no text layer (OCR is turned off)"),
        ("real/pdf/ocrmypdf__francais.pdf", "no text layer (OCR is turned off)"),
        ("real/pdf/ocrmypdf__invalid.pdf", "a damaged PDF that neither PDFium nor pdf_oxide can open"),
        ("real/pdf/ocrmypdf__linn.pdf", "no text layer (OCR is turned off)"),
        ("real/pdf/pikepdf__cyclic-toc.pdf", "an empty page (no text, no images)"),
        ("real/pdf/pypdf__crazyones-encrypted-256.pdf", "encrypted: this PDF needs a password to be read"),
        (
            "real/pdf/pypdf__encrypted_doc_no_id.pdf",
            "no text on any of its 3 pages: 2 \u{d7} an empty page (no text, no images); 1 \u{d7} no text layer (OCR is turned off)",
        ),
        ("real/pdf/pypdf__libreoffice-writer-password.pdf", "encrypted: this PDF needs a password to be read"),
        ("real/pdf/pypdf__r4-aes-user-password.pdf", "encrypted: this PDF needs a password to be read"),
        ("real/pptx/python-pptx__cht-chart-type.pptx", "no text (an empty document: 8 slides without text)"),
        ("real/pptx/python-pptx__cht-charts.pptx", "no text (an empty document: 1 slide without text)"),
    ];
    let skipped: Vec<(String, String)> = folder.skipped().iter().map(|s| (s.path.clone(), s.reason.clone())).collect();
    for s in &skipped {
        eprintln!("{}: {}", s.0, s.1);
    }
    for (path, reason) in expected {
        let got =
            skipped.iter().find(|s| s.0 == *path).unwrap_or_else(|| panic!("{path} was read, expected {reason:?}"));
        assert!(got.1.starts_with(reason), "{path}: {:?}, expected {reason:?}", got.1);
    }
    assert_eq!(skipped.len(), expected.len(), "unexpected reasons: {skipped:#?}");
    let files = count_files(&root);
    assert_eq!(folder.documents().len() + skipped.len(), files, "every file is read or skipped");
    // The ones that opened an encrypted file with an empty password, and a file whose
    // extension lies.
    assert!(folder.document("real/pdf/pypdf__r6-user-password.pdf").is_some_and(|d| !d.text.trim().is_empty()));
    assert_eq!(folder.layout("derived/docx/wrong-extension__is-really-a-pdf.docx").unwrap().format.name(), "pdf");
    let summary = folder.summary();
    eprintln!("{summary:?}");
    let pdf = summary.formats.iter().find(|f| f.0 == "pdf").unwrap();
    assert!(pdf.2 > 4000, "{pdf:?}");
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| if e.file_type().unwrap().is_dir() { count_files(&e.path()) } else { 1 })
        .sum()
}

/// A password-protected file says so as an error naming the file.
#[test]
fn encrypted_pdf_error_names_the_file() {
    let real = documents().join("real/pdf");
    let file = real.join("pypdf__libreoffice-writer-password.pdf");
    let mut ex = common::extractor(&[&real]);
    let e = ex.extract(&file, &mut |_| {}).unwrap_err();
    assert!(matches!(e, Error::Unreadable { .. }));
    assert_eq!(e.to_string(), format!("{}: encrypted: this PDF needs a password to be read", file.display()));
}
