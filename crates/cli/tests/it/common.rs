//! Helpers shared by the CLI's test files.

/// The answer object `quarry ask --json` prints last, after checking every line before it is
/// one event of the run.
pub fn result_line(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect();
    let (last, events) = lines.split_last().expect("at least the result line");
    assert_eq!(last["type"], "result", "{last}");
    assert!(events.iter().all(|e| e["type"].is_string() && e["type"] != "result"), "{text}");
    last.clone()
}

/// `$QUARRY_CORPORA/documents` (else the first `shared/corpora` beside the checkout or a parent
/// of it): the real PDF, Office and mail files of the document tests. Fails without it rather
/// than pass vacuously.
pub fn documents() -> std::path::PathBuf {
    use std::path::{Path, PathBuf};
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
    p
}

/// The data directory (`QUARRY_DATA_DIR`) every test's `quarry` gets unless it names its own:
/// under target/, so the runs tests ask are recorded there, never in the user's history.
pub fn test_data_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("quarry-data");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
