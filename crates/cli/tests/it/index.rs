//! `quarry index`: collections of real documents end to end through the binary, and the
//! kill -9 rounds of issue 15 (20 here; `quarry bench index --torture` runs 200).

use std::path::Path;
use std::process::{Command, Output};

use crate::common::documents;

fn quarry(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quarry")).args(args).env("QUARRY_DATA_DIR", data).output().unwrap()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

/// A folder of real documents (pages through the worker) and text, with one file that gives
/// no text.
fn folder(dir: &Path) {
    let docs = documents();
    for (from, to) in [
        ("dataroom/SPHERE3DCORP_06_24_2020-EX-10.12-CONSULTING AGREEMENT.pdf", "sphere3d-consulting.pdf"),
        ("real/pptx/python-pptx__test_slides.pptx", "slides.pptx"),
    ] {
        std::fs::copy(docs.join(from), dir.join(to)).unwrap_or_else(|e| panic!("{from}: {e}"));
    }
    std::fs::create_dir(dir.join("notes")).unwrap();
    std::fs::write(dir.join("notes/a.txt"), "the indemnity clause\nsurvives termination\n").unwrap();
    std::fs::write(dir.join("empty.txt"), "").unwrap();
}

#[test]
fn add_indexes_documents_by_page_and_status_lists_formats_and_reasons() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    let out = ok(quarry(data.path(), &["index", "add", dir.path().to_str().unwrap(), "--name", "room", "--no-ocr"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Updated room: 4 files"), "{stderr}");

    let status: serde_json::Value =
        serde_json::from_slice(&ok(quarry(data.path(), &["index", "status", "room", "--json"])).stdout).unwrap();
    assert_eq!(
        (status["files"].as_u64(), status["indexed"].as_u64(), status["failed"].as_u64()),
        (Some(4), Some(3), Some(1))
    );
    let formats: Vec<&str> =
        status["formats"].as_array().unwrap().iter().map(|f| f["format"].as_str().unwrap()).collect();
    assert!(formats.contains(&"pdf") && formats.contains(&"pptx") && formats.contains(&"text"), "{formats:?}");
    let pdf = status["formats"].as_array().unwrap().iter().find(|f| f["format"] == "pdf").unwrap();
    assert!(pdf["pages"].as_u64().unwrap() > 1, "the PDF is indexed page by page: {pdf}");
    assert_eq!(status["errors"][0]["files"][0], "empty.txt", "{status}");
    assert!(status["errors"][0]["reason"].as_str().unwrap().contains("empty"), "{status}");

    let text = String::from_utf8_lossy(&ok(quarry(data.path(), &["index", "status", "room"])).stdout).into_owned();
    assert!(text.contains("3 indexed, 1 without text") && text.contains("    empty.txt"), "{text}");

    let list = String::from_utf8_lossy(&ok(quarry(data.path(), &["index", "list", "--json"])).stdout).into_owned();
    let rows: Vec<serde_json::Value> = list.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "room");
}

#[test]
fn update_reads_only_what_changed_hashes_racy_files_again_and_forgets_deleted_files() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        std::fs::write(dir.path().join(format!("{i}.txt")), format!("file {i}\n")).unwrap();
    }
    let stderr = |out: Output| String::from_utf8_lossy(&ok(out).stderr).into_owned();
    stderr(quarry(data.path(), &["index", "add", dir.path().to_str().unwrap(), "--name", "t"]));
    // Written within the racy window of their read: their stat is not trusted, their bytes are
    // hashed again, found the same, and not re-indexed.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let racy = stderr(quarry(data.path(), &["index", "update", "t"]));
    assert!(racy.contains("5 read (0 indexed, 0 without text, 5 unchanged content), 0 unchanged"), "{racy}");
    let trusted = stderr(quarry(data.path(), &["index", "update", "t"]));
    assert!(trusted.contains("0 read (0 indexed, 0 without text), 5 unchanged, 0 removed"), "{trusted}");
    std::fs::write(dir.path().join("1.txt"), "file one, rewritten\n").unwrap();
    std::fs::remove_file(dir.path().join("2.txt")).unwrap();
    let changed = stderr(quarry(data.path(), &["index", "update", "t"]));
    assert!(changed.contains("1 read (1 indexed, 0 without text), 3 unchanged, 1 removed"), "{changed}");
    let status: serde_json::Value =
        serde_json::from_slice(&ok(quarry(data.path(), &["index", "status", "t", "--json"])).stdout).unwrap();
    assert_eq!(status["files"], 4);
}

#[test]
fn rm_forgets_a_collection_and_unknown_names_are_told_the_known_ones() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "a\n").unwrap();
    ok(quarry(data.path(), &["index", "add", dir.path().to_str().unwrap(), "--name", "keep"]));
    let out = quarry(data.path(), &["index", "status", "nope"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no collection named \"nope\"") && stderr.contains("keep"), "{stderr}");
    ok(quarry(data.path(), &["index", "rm", "keep"]));
    assert!(!data.path().join("collections/1").exists());
    let list = ok(quarry(data.path(), &["index", "list", "--json"]));
    assert!(list.stdout.is_empty());
}

#[test]
fn twenty_kill_9_rounds_while_editing_leave_a_consistent_index_equal_to_a_clean_build() {
    let docs = documents();
    let pdf = docs.join("dataroom/SPHERE3DCORP_06_24_2020-EX-10.12-CONSULTING AGREEMENT.pdf");
    let docx = docs.join("real/docx").read_dir().unwrap().flatten().map(|e| e.path()).min().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["bench", "index", "--torture", "--rounds", "20", "--json", "--with"])
        .arg(&pdf)
        .arg("--with")
        .arg(&docx)
        .output()
        .unwrap();
    let out = ok(out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rounds"], 20);
    assert!(report["killed"].as_u64().unwrap() >= 10, "most rounds must kill a running indexer: {report}");
    assert!(report["edits"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn ask_from_a_collection_names_the_known_ones_when_it_does_not_exist_and_takes_no_folder_beside() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "a\n").unwrap();
    ok(quarry(data.path(), &["index", "add", dir.path().to_str().unwrap(), "--name", "memo"]));
    let out = quarry(data.path(), &["ask", "--collection", "mmeo", "what?"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no collection named \"mmeo\"; the collections are: memo"), "{stderr}");
    let both = quarry(data.path(), &["ask", "--collection", "memo", "--folder", dir.path().to_str().unwrap(), "what?"]);
    assert!(!both.status.success());
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );
}

/// `quarry ask --folder` indexes the folder into a collection named from it, and a second
/// question about the same folder (named by another path to it) reuses that collection with a
/// no-change update: no file is read again and no batch is committed. The model file is broken,
/// so each run stops right after the folder is ready, where the model would start.
#[test]
fn a_second_ask_about_the_same_folder_reads_no_file_again() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("memos");
    std::fs::create_dir(&folder).unwrap();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for (name, text) in [("a.txt", "the storage room code is 7391\n"), ("b.txt", "lights off at 8pm\n")] {
        std::fs::write(folder.join(name), text).unwrap();
        // Older than the racy window, so an unchanged stat is trusted (update.rs, RACY_NS).
        std::fs::File::options().write(true).open(folder.join(name)).unwrap().set_modified(hour_ago).unwrap();
    }
    let model = dir.path().join("broken.gguf");
    std::fs::write(&model, "GGUF but not really").unwrap();
    let ask = |path: &Path| {
        let out =
            quarry(data.path(), &["ask", "--folder", path.to_str().unwrap(), "--model", model.to_str().unwrap(), "hi"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(stderr.contains("broken.gguf is not a usable GGUF model file"), "it got to the model: {stderr}");
        stderr
    };
    let generation = || {
        let out = ok(quarry(data.path(), &["index", "status", "memos", "--json"]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (v["generation"].as_u64().unwrap(), v["indexed"].as_u64().unwrap())
    };

    let first = ask(&folder);
    assert!(first.contains("as collection memos first"), "{first}");
    assert!(first.contains("2 files, 2 read (2 indexed"), "{first}");
    assert!(first.contains("Read ") && first.contains("2 files, "), "{first}");
    let (after_first, indexed) = generation();
    assert_eq!(indexed, 2);

    let second = ask(&folder.join("..").join("memos"));
    assert!(!second.contains("first"), "the collection is reused: {second}");
    assert!(second.contains("2 files, 0 read") && second.contains("2 unchanged"), "{second}");
    assert_eq!(generation().0, after_first, "no batch was committed: {second}");
    let list = ok(quarry(data.path(), &["index", "list", "--json"]));
    assert_eq!(String::from_utf8_lossy(&list.stdout).lines().count(), 1, "one collection for one folder");
}

/// `quarry index watch` makes a file saved into the folder findable by `quarry grep` without an
/// update (polled with a 5 s ceiling, not the 2 s the watcher aims at), and Ctrl-C stops it
/// cleanly.
#[test]
fn index_watch_finds_a_saved_file_and_stops_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "first\n").unwrap();
    ok(quarry(data.path(), &["index", "add", dir.path().to_str().unwrap(), "--name", "live"]));
    let mut watch = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["index", "watch", "live"])
        .env("QUARRY_DATA_DIR", data.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(watch.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("watching live") {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "watch ended before watching: {seen}");
        seen.push_str(&line);
    }
    std::fs::write(dir.path().join("b.txt"), "a saved zebra\n").unwrap();
    let started = std::time::Instant::now();
    let found = loop {
        let out = quarry(data.path(), &["grep", "zebra", "--collection", "live"]);
        if out.status.success() {
            break Some(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if started.elapsed() > std::time::Duration::from_secs(5) {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let pid = watch.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = watch.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(found.as_deref(), Some("b.txt:1:a saved zebra\n"), "{seen}{rest}");
    assert!(status.success(), "{status}: {seen}{rest}");
    assert!(rest.contains("stopped watching"), "{seen}{rest}");
}
