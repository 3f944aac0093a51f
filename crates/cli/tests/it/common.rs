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
