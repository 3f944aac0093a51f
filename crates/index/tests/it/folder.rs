//! A folder of documents (issue 14, items 3 and 5): pages survive into the folder's layouts,
//! lines map to pages and back, citations name the page.

use quarry_index::{Folder, Kind, LoadEvent, LoadOptions, NEEDS_WORKER};

use crate::common::{self, documents};

#[test]
fn a_mixed_folder_keeps_its_pages_and_cites_them() {
    let dir = tempfile::tempdir().unwrap();
    let real = documents().join("real");
    std::fs::create_dir(dir.path().join("contracts")).unwrap();
    std::fs::copy(real.join("pdf/asymptote__asyRefCard.pdf"), dir.path().join("contracts/card.pdf")).unwrap();
    std::fs::copy(real.join("xlsx/r-cran-readxl__deaths.xlsx"), dir.path().join("deaths.xlsx")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "one\ntwo\nthree\nfour\n").unwrap();
    let events = std::sync::Mutex::new(Vec::new());
    let options = LoadOptions { extractor: Some(common::config(&[])), workers: 1 };
    let folder = Folder::load_with(dir.path(), &options, &|e| events.lock().unwrap().push(e.clone()), None).unwrap();
    let paths: Vec<&str> = folder.documents().iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["contracts/card.pdf", "deaths.xlsx", "notes.txt"]);

    let card = folder.layout("contracts/card.pdf").unwrap();
    assert_eq!(card.format, Kind::Pdf);
    assert_eq!(card.pages.len(), 3);
    let doc = folder.document("contracts/card.pdf").unwrap();
    assert_eq!(doc.text.lines().count(), card.line_count());
    // Line 3 of page 2, and back.
    let p2 = &card.pages[1];
    let line = card.line_of(2, 3).unwrap();
    assert_eq!(line, p2.first_line + 2);
    let (page, within) = card.locate(line).unwrap();
    assert_eq!((page.number, within), (2, 3));
    assert_eq!(
        card.cite("contracts/card.pdf", line, line + 2),
        format!("contracts/card.pdf p. {}, lines 3\u{2013}5", p2.label)
    );
    let last_of_1 = card.pages[0].first_line + card.pages[0].line_count - 1;
    assert_eq!(
        card.cite("contracts/card.pdf", last_of_1, line),
        format!(
            "contracts/card.pdf p. {}, line {} \u{2013} p. {}, line 3",
            card.pages[0].label, card.pages[0].line_count, p2.label
        )
    );
    assert_eq!(card.locate(card.line_count() + 1), None);
    let sheet = folder.layout("deaths.xlsx").unwrap();
    assert_eq!(sheet.page_labelled("other").unwrap().number, 2);
    let notes = folder.layout("notes.txt").unwrap();
    assert!(!notes.is_paged());
    assert_eq!(notes.cite("notes.txt", 2, 3), "notes.txt:2-3");
    assert_eq!(notes.cite("notes.txt", 4, 4), "notes.txt:4");

    let summary = folder.summary();
    assert_eq!(summary.formats, [("pdf".to_string(), 1, 3), ("text".to_string(), 1, 1), ("xlsx".to_string(), 1, 2)]);
    let events = events.into_inner().unwrap();
    assert!(matches!(events[0], LoadEvent::Walked { files: 3 }), "{events:?}");
    assert_eq!(events.iter().filter(|e| matches!(e, LoadEvent::Read { ok: true, .. })).count(), 3);
}

/// Without a worker, plain text is still read (in process) and other files say what they need.
#[test]
fn without_a_worker_only_plain_text_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "alpha\n").unwrap();
    std::fs::write(dir.path().join("t.csv"), "a,b\n1,2\n").unwrap();
    std::fs::copy(documents().join("real/pdf/pypdf__example.pdf"), dir.path().join("x.pdf")).unwrap();
    let folder = Folder::load_with(dir.path(), &LoadOptions { extractor: None, workers: 0 }, &|_| {}, None).unwrap();
    assert_eq!(folder.document("a.txt").unwrap().text, "alpha\n");
    assert_eq!(folder.document("t.csv").unwrap().text, "a\tb\n1\t2\n");
    assert_eq!(folder.skipped()[0].path, "x.pdf");
    assert_eq!(folder.skipped()[0].reason, NEEDS_WORKER);
}
