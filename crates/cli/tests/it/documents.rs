//! A data room of real PDF, DOCX, XLSX, PPTX, EPUB and EML files through `quarry` end to end:
//! `quarry extract` on each, and `quarry ask --mode rlm` with the real models answering from
//! the PDF with a verified citation that names its page.

use std::path::Path;
use std::process::Command;

use crate::common::{documents, result_line};

/// The mixed folder: one file of each format, the answer on page 2 of the PDF.
fn data_room(dir: &Path) {
    let docs = documents();
    for (from, to) in [
        ("dataroom/SPHERE3DCORP_06_24_2020-EX-10.12-CONSULTING AGREEMENT.pdf", "sphere3d-consulting.pdf"),
        (
            "dataroom/AtnInternationalInc_20191108_10-Q_EX-10.1_11878541_EX-10.1_Maintenance Agreement.docx",
            "atn-maintenance.docx",
        ),
        ("real/xlsx/r-cran-readxl__deaths.xlsx", "deaths.xlsx"),
        ("real/pptx/python-pptx__test_slides.pptx", "slides.pptx"),
        ("real/epub/epubcheck__childrens-literature.epub", "childrens-literature.epub"),
        ("real/eml/spamassassin__sample-spam.eml", "sample-spam.eml"),
    ] {
        std::fs::copy(docs.join(from), dir.join(to)).unwrap_or_else(|e| panic!("{from}: {e}"));
    }
}

fn quarry(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(args)
        .env("QUARRY_DATA_DIR", crate::common::test_data_dir())
        .output()
        .unwrap()
}

#[test]
fn extract_summarises_every_file_of_a_data_room_by_format_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    data_room(dir.path());
    std::fs::write(dir.path().join("locked.pdf"), b"%PDF-1.7\nnot really a pdf").unwrap();
    let out = quarry(&["extract", "--summary", "--no-ocr", dir.path().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "a file without text makes the exit code 1: {text}");
    let line = |name: &str| text.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name}: {text}"));
    assert!(line("sphere3d-consulting.pdf").contains("\tpdf\t4 pages\t"), "{text}");
    assert!(line("slides.pptx").contains("\tpptx\t"), "{text}");
    assert!(line("deaths.xlsx").contains("\txlsx\t2 sheets\t"), "{text}");
    assert!(line("childrens-literature.epub").contains("\tepub\t"), "{text}");
    assert!(line("sample-spam.eml").contains("\teml\t"), "{text}");
    assert!(line("locked.pdf").contains("\tREASON\t"), "{text}");
    // --json: pages with labels, and the extractor.
    let pdf = dir.path().join("sphere3d-consulting.pdf");
    let out = quarry(&["extract", "--json", "--pages", "2", pdf.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pages"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["pages"][0]["label"], "2", "{v}");
    assert!(v["pages"][0]["text"].as_str().unwrap().contains("A total of 100,000"), "{v}");
}

#[test]
fn ask_answers_from_a_mixed_data_room_with_a_verified_citation_naming_the_page() {
    let dir = tempfile::tempdir().unwrap();
    data_room(dir.path());
    let out = quarry(&[
        "ask",
        "--mode",
        "rlm",
        "--json",
        "--max-seconds",
        "300",
        "--folder",
        dir.path().to_str().unwrap(),
        "How many shares of restricted common stock does the consultant get under the consulting agreement?",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("1 pdf (4 pages)") && err.contains("1 xlsx (2 sheets)"), "{err}");
    let v = result_line(&out.stdout);
    assert!(v["answer"].as_str().unwrap().contains("100,000"), "{v}");
    let citations = v["citations"].as_array().unwrap();
    let on_page = citations.iter().find(|c| {
        c["path"] == "sphere3d-consulting.pdf" && c["verified"] == true && c["page"] == 2 && c["page_label"] == "2"
    });
    let c = on_page.unwrap_or_else(|| panic!("no verified citation of the PDF's page 2: {v}"));
    assert!(c["location"].as_str().unwrap().starts_with("sphere3d-consulting.pdf p. 2, line"), "{c}");
}

#[test]
fn ask_reads_scanned_pages_by_ocr_unless_told_not_to() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(documents().join("real/pdf/ocrmypdf__c03-29.pdf"), dir.path().join("scan.pdf")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "a note\n").unwrap();
    // The folder is read (and its line printed) before any model is needed.
    let ask = |extra: &[&str]| {
        let mut args = vec!["ask", "--folder", dir.path().to_str().unwrap(), "--model", "/no/such/model.gguf"];
        args.extend_from_slice(extra);
        args.push("What happened?");
        String::from_utf8_lossy(&quarry(&args).stderr).into_owned()
    };
    let with_ocr = ask(&[]);
    assert!(
        with_ocr.contains("Read ") && with_ocr.contains("1 pdf (1 page)") && with_ocr.contains("by OCR"),
        "{with_ocr}"
    );
    let without = ask(&["--no-ocr"]);
    assert!(without.contains("skipped scan.pdf: no text layer"), "{without}");
    assert!(!without.contains("by OCR"), "{without}");
}
