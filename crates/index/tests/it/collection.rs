//! Collections (issue 15) in process: a collection's documents are the folder's, page for page;
//! an update interrupted between the tantivy commit and the catalog resumes; a removed folder
//! empties its collection.

use quarry_index::collection::{Chunks, Status};
use quarry_index::{Folder, Library, LoadOptions, UpdateOptions};

use crate::common::{self, documents};

fn options() -> UpdateOptions {
    UpdateOptions { extractor: Some(common::config(&[])), workers: 1, ..Default::default() }
}

/// A folder of real documents in nested folders, named so that the walk's order (names within
/// each folder) and plain path order differ: `a/x.txt` is walked before `a.txt`.
fn data_room(dir: &std::path::Path) {
    let real = documents().join("real");
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::copy(real.join("pdf/asymptote__asyRefCard.pdf"), dir.join("a/card.pdf")).unwrap();
    std::fs::copy(real.join("xlsx/r-cran-readxl__deaths.xlsx"), dir.join("deaths.xlsx")).unwrap();
    std::fs::write(dir.join("a/x.txt"), "inside\n").unwrap();
    std::fs::write(dir.join("a.txt"), "beside\nno newline at the end").unwrap();
    std::fs::write(dir.join("empty.txt"), "").unwrap();
}

#[test]
fn a_collection_gives_the_same_documents_layouts_and_order_as_reading_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    data_room(dir.path());
    let data = tempfile::tempdir().unwrap();
    let mut library = Library::open(data.path()).unwrap();
    let row = library.add(dir.path(), None).unwrap();
    let report = library.update(&row, &options(), &|_| {}, None).unwrap();
    assert_eq!((report.indexed, report.failed), (4, 1), "{report:?}");

    let indexed = library.folder(&library.get(&row.name).unwrap()).unwrap();
    let read =
        Folder::load_with(dir.path(), &LoadOptions { extractor: Some(common::config(&[])), workers: 1 }, &|_| {}, None)
            .unwrap();
    let paths = |f: &Folder| f.documents().iter().map(|d| d.path.clone()).collect::<Vec<_>>();
    assert_eq!(paths(&indexed), paths(&read));
    assert_eq!(paths(&indexed), ["a/card.pdf", "a/x.txt", "a.txt", "deaths.xlsx"]);
    for ((d1, l1), (d2, l2)) in indexed.entries().zip(read.entries()) {
        assert_eq!(d1.text, d2.text, "{}", d1.path);
        assert_eq!(l1, l2, "{}", d1.path);
    }
    assert_eq!(indexed.skipped()[0].path, "empty.txt");
    assert!(library.check(&row).unwrap().is_empty());
}

#[test]
fn a_batch_committed_to_tantivy_but_not_applied_is_rolled_forward() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "alpha\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut library = Library::open(data.path()).unwrap();
    let row = library.add(dir.path(), Some("c")).unwrap();
    library.update(&row, &options(), &|_| {}, None).unwrap();
    let before = library.catalog().file(row.id, "a.txt").unwrap().unwrap();

    // Steps 1–3 of a batch by hand (the catalog opens it, tantivy commits), then a "crash"
    // before step 4: the catalog still shows the old row.
    let mut catalog = quarry_index::collection::Catalog::open(&data.path().join("catalog.sqlite")).unwrap();
    let chunks = Chunks::open(&library.index_dir(row.id)).unwrap();
    let mut writer = chunks.writer().unwrap();
    let g = before.generation + 1;
    let mut page = quarry_index::Page::new(1, "1", "beta\n");
    page.first_line = 1;
    page.line_count = 1;
    chunks.add_file(&writer, before.id as u64, "a.txt", std::slice::from_ref(&page), g).unwrap();
    let mut row_after = before.clone();
    row_after.generation = g;
    row_after.text_hash = Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"beta\n")));
    catalog.open_batch(row.id, g, &[quarry_index::collection::catalog::Change::Read(Box::new(row_after))], 5).unwrap();
    chunks.commit(&mut writer, g).unwrap();
    drop(writer);
    assert_eq!(library.catalog().file(row.id, "a.txt").unwrap().unwrap().generation, before.generation);

    // Opening for a check (as the next update does) rolls it forward.
    assert_eq!(library.check(&row).unwrap(), Vec::<String>::new());
    let after = library.catalog().file(row.id, "a.txt").unwrap().unwrap();
    assert_eq!((after.generation, after.status), (g, Status::Indexed));
    let text = library.snapshot(&row).unwrap().remove(0).text;
    assert_eq!(text, "beta\n");
}

#[test]
fn a_batch_tantivy_never_committed_is_dropped_and_its_file_read_again() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "alpha\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut library = Library::open(data.path()).unwrap();
    let row = library.add(dir.path(), Some("c")).unwrap();
    library.update(&row, &options(), &|_| {}, None).unwrap();
    let before = library.catalog().file(row.id, "a.txt").unwrap().unwrap();
    std::fs::write(dir.path().join("a.txt"), "alpha, then more\n").unwrap();

    // Step 1 only, then a "crash": the batch is open, tantivy never saw it.
    let mut catalog = quarry_index::collection::Catalog::open(&data.path().join("catalog.sqlite")).unwrap();
    let mut row_after = before.clone();
    row_after.generation = before.generation + 1;
    row_after.size = Some(17);
    catalog
        .open_batch(
            row.id,
            before.generation + 1,
            &[quarry_index::collection::catalog::Change::Read(Box::new(row_after))],
            17,
        )
        .unwrap();

    let report = library.update(&row, &options(), &|_| {}, None).unwrap();
    assert_eq!((report.rolled_forward, report.rolled_back, report.indexed), (0, 1, 1), "{report:?}");
    assert!(library.check(&row).unwrap().is_empty());
    assert_eq!(library.snapshot(&row).unwrap()[0].text, "alpha, then more\n");
}

#[test]
fn a_deleted_file_leaves_the_index_and_a_removed_collection_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "alpha\n").unwrap();
    std::fs::write(dir.path().join("b.txt"), "beta\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut library = Library::open(data.path()).unwrap();
    let row = library.add(dir.path(), Some("c")).unwrap();
    library.update(&row, &options(), &|_| {}, None).unwrap();
    std::fs::remove_file(dir.path().join("b.txt")).unwrap();
    let report = library.update(&row, &options(), &|_| {}, None).unwrap();
    assert_eq!(report.removed, 1);
    let snapshot = library.snapshot(&row).unwrap();
    assert_eq!(snapshot.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["a.txt"]);
    assert!(library.check(&row).unwrap().is_empty(), "no chunk of b.txt is left");
    let index = library.index_dir(row.id);
    assert!(index.exists());
    library.remove("c").unwrap();
    assert!(!index.exists());
    assert!(library.collections().unwrap().is_empty());
}

#[test]
fn grep_finds_the_lines_and_match_ranges_rg_finds_on_a_mirror_of_the_text() {
    let dir = tempfile::tempdir().unwrap();
    let real = documents().join("real");
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    std::fs::copy(real.join("pdf/asymptote__asyRefCard.pdf"), dir.path().join("b/card.pdf")).unwrap();
    std::fs::write(dir.path().join("a.txt"), "The clause survives.\nno match here\nclause, clause and CLAUSE\n")
        .unwrap();
    std::fs::write(dir.path().join("crlf.txt"), "first line\r\nsecond clause\r\n").unwrap();
    std::fs::write(dir.path().join("unicode.txt"), "Straße and STRASSE\nΣΑΣ σας café Café\n").unwrap();
    // Several chunks: matches near every chunk edge must keep their line numbers.
    let long: String = (1..=6000).map(|i| format!("line {i}: invoice 555-{i} of the quarterly audit\n")).collect();
    std::fs::write(dir.path().join("b/long.txt"), long).unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut library = Library::open(data.path()).unwrap();
    let row = library.add(dir.path(), Some("g")).unwrap();
    library.update(&row, &options(), &|_| {}, None).unwrap();

    let mirror = common::mirror(&library, &row);
    let cases: &[(&[&str], &str)] = &[
        (&[], "clause"),
        (&["-i"], "clause"),
        (&["-F"], "555-1"),
        (&[], r"\d{3}-\d+"),
        (&[], r"^line 1\d\d:"),
        (&[], r"audit$"),
        (&[], r"second clause\r$"),
        (&["-i"], "straße|σας"),
        (&[], r"\bthe\b"),
        (&[], "caf[eé]"),
        (&["-i"], r"[a-z]+ing"),
        (&["-F", "-i"], "Quarterly Audit"),
    ];
    for (flags, pattern) in cases {
        let options = quarry_index::collection::GrepOptions {
            ignore_case: flags.contains(&"-i"),
            fixed: flags.contains(&"-F"),
            ..Default::default()
        };
        let report = library.grep(&row, pattern, &options).unwrap();
        let ours: Vec<_> = report.hits.iter().map(|h| (h.path.clone(), h.line, h.ranges.clone())).collect();
        let theirs = common::rg(mirror.path(), flags, pattern);
        assert!(!theirs.is_empty(), "{pattern}: the case must match something");
        assert_eq!(ours, theirs, "{flags:?} {pattern}");
    }
    let pdf = library.grep(&row, "Asymptote", &Default::default()).unwrap();
    let hit = pdf.hits.iter().find(|h| h.path == "b/card.pdf").expect("the PDF's text is searched");
    assert!(hit.paged && hit.page >= 1 && hit.page_line >= 1, "{hit:?}");
    let globbed = quarry_index::collection::GrepOptions { globs: vec!["!b/".into()], ..Default::default() };
    assert!(library.grep(&row, "line", &globbed).unwrap().hits.iter().all(|h| !h.path.starts_with("b/")));
    let err = library.grep(&row, "(unclosed", &Default::default()).unwrap_err().to_string();
    assert!(err.contains("\"(unclosed\" is not a valid pattern"), "{err}");
}

/// The one `Corpus` over a collection's index answers as the same documents held in memory:
/// the same grep hits (lines, pages, match ranges, glob), the same reads by line and by page,
/// the same files and counts, and a search ranks the document that holds the words first.
#[test]
fn the_collection_corpus_greps_reads_and_lists_as_the_folder_in_memory_does() {
    use quarry_index::corpus::PageRef;
    use quarry_index::{CollectionCorpus, Corpus, MemoryCorpus};
    let dir = tempfile::tempdir().unwrap();
    data_room(dir.path());
    std::fs::write(dir.path().join("zz.txt"), "a quokka is a marsupial\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut library = Library::open(data.path()).unwrap();
    let row = library.add(dir.path(), None).unwrap();
    library.update(&row, &options(), &|_| {}, None).unwrap();
    let read =
        Folder::load_with(dir.path(), &LoadOptions { extractor: Some(common::config(&[])), workers: 1 }, &|_| {}, None)
            .unwrap();
    let memory = MemoryCorpus::of_folder(&read);
    let indexed = CollectionCorpus::new(library, row);
    let corpora: [&dyn Corpus; 2] = [&memory, &indexed];

    for (pattern, ignore_case, fixed, glob) in [
        ("side", false, false, None),
        (r"\d{4}", false, false, None),
        ("BESIDE|inside", true, false, None),
        ("e", false, false, Some("*.txt")),
        ("a marsupial", false, true, None),
    ] {
        let [m, c] = corpora.map(|k| k.grep(pattern, ignore_case, fixed, glob, 0).unwrap());
        assert_eq!(m, c, "{pattern}");
        assert!(!m.is_empty(), "{pattern} finds nothing: the fixture no longer tests it");
    }
    let hits = memory.grep("inside|beside", false, false, Some("*.txt"), 0).unwrap();
    assert_eq!(hits.iter().map(|h| (h.path.as_str(), h.line)).collect::<Vec<_>>(), [("a/x.txt", 1), ("a.txt", 1)]);
    assert_eq!(memory.grep(r"\d", false, false, None, 2).unwrap().len(), 2, "max cuts the hits");
    assert_eq!(memory.grep("e", false, false, Some("a/*.txt"), 0).unwrap()[0].path, "a/x.txt");
    let card = memory.grep(r"\w", false, false, Some("*.pdf"), 0).unwrap();
    assert!(!card.is_empty() && card.iter().all(|h| h.paged && h.path == "a/card.pdf"), "{card:?}");

    for (path, start, end, page) in [
        ("a.txt", None, None, None),
        ("a.txt", Some(2), Some(2), None),
        ("a/card.pdf", Some(1), Some(3), Some(PageRef::Number(1))),
        ("deaths.xlsx", None, None, Some(PageRef::Number(2))),
    ] {
        let [m, c] = corpora.map(|k| k.read(path, start, end, page.as_ref()).map_err(|e| e.to_string()));
        assert_eq!(m, c, "{path} {start:?}..{end:?} {page:?}");
        assert!(m.as_ref().is_ok_and(|t| !t.is_empty()) || page.is_some(), "{path}: {m:?}");
    }
    assert_eq!(memory.read("a.txt", Some(2), Some(2), None).unwrap(), "no newline at the end");
    for k in corpora {
        assert!(k.read("nowhere.txt", None, None, None).unwrap_err().to_string().contains("no document named"));
        assert!(k
            .read("a.txt", None, None, Some(&PageRef::Number(3)))
            .unwrap_err()
            .to_string()
            .contains("has no page 3"));
    }
    let [m, c] = corpora.map(|k| k.files("*.txt").unwrap());
    assert_eq!((&m, &c), (&vec!["a/x.txt".to_string(), "a.txt".into(), "zz.txt".into()], &m));
    let [m, c] = corpora.map(|k| k.stats().unwrap());
    assert_eq!(m, c);
    assert_eq!(m.files, 5);
    for k in corpora {
        let top = k.search("quokka", 3).unwrap();
        assert_eq!(top[0].path, "zz.txt", "{top:?}");
        assert_eq!((top[0].line_start, top[0].page), (1, 1));
    }
}

/// Polls `found` every 50 ms for at most 5 s (a ceiling for a loaded machine, not the 2 s the
/// watcher aims at); returns how long it took, or `None`.
fn within_5s(mut found: impl FnMut() -> bool) -> Option<std::time::Duration> {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(5) {
        if found() {
            return Some(started.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    None
}

/// A watched collection finds a file written into its folder, and forgets one deleted from it,
/// without anyone running `update`; cancelling stops the watch cleanly.
#[test]
fn a_file_written_into_a_watched_folder_is_found_and_a_deleted_one_leaves_the_index() {
    use quarry_index::collection::{watch, WatchOptions};
    use quarry_index::{CancelToken, CollectionCorpus, Corpus};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("old.txt"), "the old memo\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut library = Library::open(data.path()).unwrap();
    let row = library.add(dir.path(), None).unwrap();
    library.update(&row, &options(), &|_| {}, None).unwrap();

    let cancel = CancelToken::default();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let watching = {
        let (cancel, row, data) = (cancel.clone(), row.clone(), data.path().to_path_buf());
        std::thread::spawn(move || {
            let mut library = Library::open(&data).unwrap();
            let options = WatchOptions { update: options(), ..Default::default() };
            watch::watch(
                &mut library,
                &[row],
                &options,
                &mut |e| {
                    if let quarry_index::collection::WatchEvent::Watching { .. } = e {
                        let _ = started_tx.send(());
                    }
                },
                &cancel,
            )
        })
    };
    started_rx.recv_timeout(std::time::Duration::from_secs(30)).expect("the watch starts");
    let corpus = CollectionCorpus::new(Library::open(data.path()).unwrap(), row);
    let grep = |pattern: &str| corpus.grep(pattern, false, false, None, 0).unwrap();

    std::fs::write(dir.path().join("sub/new.txt"), "a zebra crossing\n").unwrap();
    let took = within_5s(|| !grep("zebra").is_empty());
    assert!(took.is_some(), "a new file is not found within 5 s");
    assert_eq!(grep("zebra")[0].path, "sub/new.txt");

    std::fs::remove_file(dir.path().join("old.txt")).unwrap();
    // Gone from the index and from the catalog (the catalog applies a batch just after tantivy
    // commits it, so both are polled).
    let gone = || grep("old memo").is_empty() && corpus.files("*").unwrap() == ["sub/new.txt"];
    if within_5s(gone).is_none() {
        cancel.cancel();
        panic!(
            "a deleted file is still there after 5 s ({:?}); the watch ended with {:?}",
            corpus.files("*"),
            watching.join().unwrap()
        );
    }

    cancel.cancel();
    watching.join().unwrap().unwrap();
}
