//! `quarry history` end to end over a history written through the library, in a data directory
//! under target (never the user's). The runs `quarry ask` records itself, and one killed
//! half-way, are in cli.rs with the real model.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use quarry_index::history::{Finish, History, NewRun, RunStatus};
use serde_json::json;

/// A fresh data directory under target/, for one test.
pub fn data_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("history").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn quarry(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quarry")).args(args).env("QUARRY_DATA_DIR", data).output().unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    out
}

/// Two finished runs and one whose process died.
fn seed(data: &Path) -> (i64, i64, i64) {
    let h = History::open_in(data).unwrap();
    let mut first = NewRun::new("Which agreements renew automatically?", "rlm", "/data/contracts".as_ref());
    first.models = json!({"root": "/no/such/root.gguf", "sub": "/no/such/sub.gguf", "ctx": 4096});
    let a = h.start(&first).unwrap();
    h.append(
        a,
        &[
            json!({"type": "iteration_started", "index": 1}).to_string(),
            json!({"type": "code_block", "iteration": 1, "index": 1, "code": "print(grep('renew'))"}).to_string(),
        ],
    )
    .unwrap();
    h.finish(
        a,
        &Finish {
            status: RunStatus::Done,
            answer: Some("The Acme MSA renews every year (msa.txt:4).".into()),
            citations: json!([{"path": "msa.txt", "location": "msa.txt:4", "status": "verified", "verified": true}]),
            stats: json!({"stop_reason": "final", "iterations": 1, "sub_calls": 0, "seconds": 2.0}),
            error: None,
        },
    )
    .unwrap();
    let b = h.start(&NewRun::new("How many invoices are overdue?", "direct", "/data/invoices".as_ref())).unwrap();
    h.finish(
        b,
        &Finish {
            status: RunStatus::Cancelled,
            answer: None,
            citations: json!([]),
            stats: json!({"stop_reason": "cancelled"}),
            error: None,
        },
    )
    .unwrap();
    let mut killed = NewRun::new("Who signed the lease?", "auto", "/data/leases".as_ref());
    let mut child = Command::new("true").spawn().unwrap();
    killed.pid = child.id();
    child.wait().unwrap();
    let c = h.start(&killed).unwrap();
    (a, b, c)
}

#[test]
fn list_show_search_export_and_rm_read_the_recorded_runs() {
    let data = data_dir("commands");
    let (a, b, c) = seed(&data);

    let out = ok(quarry(&data, &["history", "list", "--json"]));
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<(i64, &str)> =
        runs.as_array().unwrap().iter().map(|r| (r["id"].as_i64().unwrap(), r["status"].as_str().unwrap())).collect();
    assert_eq!(
        rows,
        [(c, "interrupted"), (b, "cancelled"), (a, "done")],
        "newest first; the dead process's run interrupted"
    );

    let out = ok(quarry(&data, &["history", "list"]));
    let lines = text(&out.stdout);
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(lines.lines().last().unwrap().contains("Which agreements renew automatically?"), "{lines}");
    assert!(lines.contains("interrupted") && lines.contains("contracts"), "{lines}");

    let out = ok(quarry(&data, &["history", "list", "--status", "done", "--json"]));
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);

    let out = ok(quarry(&data, &["history", "show", &a.to_string()]));
    let shown = text(&out.stdout);
    for part in [
        "Which agreements renew automatically?",
        "The Acme MSA renews every year",
        "✓ msa.txt:4",
        "done",
        "folder /data/contracts",
    ] {
        assert!(shown.contains(part), "{part:?} missing from:\n{shown}");
    }
    let out = ok(quarry(&data, &["history", "show", &a.to_string(), "--json"]));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["events"][1]["code"], "print(grep('renew'))");
    assert_eq!(run["citations"][0]["location"], "msa.txt:4");

    let out = ok(quarry(&data, &["history", "search", "renew"]));
    let found = text(&out.stdout);
    assert!(found.contains("Which agreements renew automatically?") && found.contains("[renew"), "{found}");
    let out = ok(quarry(&data, &["history", "search", "lease", "--json"]));
    let hits: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hits[0]["id"], c);

    let out = ok(quarry(&data, &["history", "export", &a.to_string()]));
    let md = text(&out.stdout);
    assert!(md.starts_with("# Which agreements renew automatically?"), "{md}");
    assert!(md.contains("- ✓ `msa.txt:4`") && md.contains("```python\nprint(grep('renew'))\n```"), "{md}");
    let file = data.join("run.json");
    ok(quarry(&data, &["history", "export", &a.to_string(), "--format", "json", "-o", file.to_str().unwrap()]));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(json["answer"], "The Acme MSA renews every year (msa.txt:4).");
    let out = ok(quarry(&data, &["history", "export", &a.to_string(), "--format", "jsonl"]));
    assert_eq!(text(&out.stdout).lines().count(), 2);

    let out = ok(quarry(&data, &["history", "rm", &b.to_string(), &c.to_string()]));
    assert!(text(&out.stderr).contains(&format!("removed run {b}")));
    let out = ok(quarry(&data, &["history", "list", "--json"]));
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);
}

#[test]
fn a_run_that_does_not_exist_is_one_sentence_naming_it() {
    let data = data_dir("missing");
    seed(&data);
    for args in [
        &["history", "show", "999"][..],
        &["history", "export", "999", "--format", "json"],
        &["history", "rm", "999"],
        &["history", "rerun", "999"],
    ] {
        let out = quarry(&data, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            text(&out.stderr).trim(),
            "error: there is no run 999 in the history; `quarry history list` shows the runs there are",
            "{args:?}"
        );
        assert!(out.stdout.is_empty());
    }
    let out = quarry(&data, &["history", "search", "?!"]);
    assert_eq!(text(&out.stderr).trim(), "error: \"?!\" holds no word to search the history for");
    let out = quarry(&data, &["history", "list", "--status", "lost"]);
    assert!(text(&out.stderr).contains("the statuses are running, done, failed, cancelled, interrupted"));
}

#[test]
fn an_empty_history_says_how_to_fill_it() {
    let data = data_dir("empty");
    let out = ok(quarry(&data, &["history", "list"]));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("`quarry ask` records every question"));
    let out = ok(quarry(&data, &["history", "list", "--json"]));
    assert_eq!(text(&out.stdout).trim(), "[]");
}

#[test]
fn rerun_asks_again_of_the_recorded_folder_with_the_recorded_models() {
    let data = data_dir("rerun");
    let folder = data.join("contracts");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("msa.txt"), "Master services agreement.\nIt renews every year.\n").unwrap();
    let h = History::open_in(&data).unwrap();
    let mut run = NewRun::new("-Which agreements renew?", "direct", &folder);
    run.models = json!({"root": "/no/such/root.gguf", "sub": "/no/such/sub.gguf"});
    let id = h.start(&run).unwrap();
    h.finish(
        id,
        &Finish { status: RunStatus::Done, answer: None, citations: json!([]), stats: json!({}), error: None },
    )
    .unwrap();
    let out = quarry(&data, &["history", "rerun", &id.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    // The question (even one that starts with '-'), the folder and the recorded model.
    assert!(err.contains(&format!("asking run {id}'s question again: -Which agreements renew?")), "{err}");
    assert!(err.contains(&format!("Read {}: 1 files", folder.display())), "{err}");
    assert!(err.contains("/no/such/root.gguf"), "{err}");
}
