//! The `quarry` binary end to end: models commands and `ask` with the real 0.5B model.

use crate::common::{result_line, test_data_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SMALL: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";

fn quarry(args: &[&str], models_dir: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quarry"));
    cmd.args(args).env("QUARRY_DATA_DIR", test_data_dir());
    if let Some(dir) = models_dir {
        cmd.env("QUARRY_MODELS_DIR", dir);
    }
    cmd.output().unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// The real 0.5B model's path, from the user's models directory.
fn small_model_path() -> PathBuf {
    let out = quarry(&["models", "path", SMALL], None);
    assert!(out.status.success(), "{SMALL} must be installed (`make test` fetches it): {}", text(&out.stderr));
    PathBuf::from(text(&out.stdout).trim())
}

#[test]
fn models_list_json_reports_the_catalog_and_what_is_installed() {
    let empty = tempfile::tempdir().unwrap();
    let out = quarry(&["models", "list", "--json"], Some(empty.path()));
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    let small = rows.iter().find(|r| r["id"] == SMALL).unwrap();
    assert_eq!(small["size"], 491400064);
    assert_eq!(small["installed"], false);
    assert_eq!(small["role"], "sub");
    assert!(rows.iter().any(|r| r["id"] == "qwen2.5-coder-1.5b-instruct-q4_k_m" && r["default_for"][0] == "root"));
}

#[test]
fn models_path_exits_1_when_absent_and_unknown_ids_are_one_sentence() {
    let empty = tempfile::tempdir().unwrap();
    let out = quarry(&["models", "path", SMALL], Some(empty.path()));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&format!("run `quarry models fetch {SMALL}`")));
    assert!(out.stdout.is_empty());

    let out = quarry(&["models", "fetch", "no-such-model"], Some(empty.path()));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "error: unknown model 'no-such-model'; `quarry models list` shows the known ids"
    );
}

#[test]
fn verify_recognises_the_real_model_and_import_registers_it_in_place() {
    let path = small_model_path();
    let out = quarry(&["models", "verify", path.to_str().unwrap(), "--json"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sha256"], "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32");
    assert_eq!(v["matches"], SMALL);

    // Importing the same bytes into a fresh models directory completes the catalog entry
    // without a download: `models path` now points at the user's file.
    let fresh = tempfile::tempdir().unwrap();
    let out = quarry(&["models", "import", path.to_str().unwrap()], Some(fresh.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = quarry(&["models", "path", SMALL], Some(fresh.path()));
    assert_eq!(text(&out.stdout).trim(), path.canonicalize().unwrap().to_str().unwrap());
}

#[test]
fn import_refuses_a_non_gguf_file_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("weights.gguf");
    std::fs::write(&fake, "not a model").unwrap();
    let out = quarry(&["models", "import", fake.to_str().unwrap()], Some(dir.path()));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: ") && err.contains("weights.gguf is not a usable GGUF model file"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn ask_finds_a_needle_with_the_real_model() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(
        folder.path().join("memo.txt"),
        "Reminder for staff.\nThe storage room code is 7391.\nLights off at 8pm.\n",
    )
    .unwrap();
    std::fs::write(folder.path().join("menu.txt"), "Monday: soup\nTuesday: pasta\n").unwrap();
    let model = small_model_path();
    let out = quarry(
        &[
            "ask",
            "--folder",
            folder.path().to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--json",
            "What is the storage room code?",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = result_line(&out.stdout);
    assert!(v["answer"].as_str().unwrap().contains("7391"), "{v}");
    assert_eq!(v["stop_reason"], "final", "{v}");
    assert_eq!(v["iterations"], 1, "{v}");
    assert!(v["citations"].is_array(), "{v}");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 20);
    assert!(text(&out.stderr).contains("Read "), "progress goes to stderr");
}

#[test]
fn ask_warns_visibly_when_the_folder_does_not_fit() {
    let folder = tempfile::tempdir().unwrap();
    for i in 0..6 {
        std::fs::write(
            folder.path().join(format!("part{i}.txt")),
            "The quick brown fox jumps over the lazy dog. ".repeat(80),
        )
        .unwrap();
    }
    let model = small_model_path();
    let out = quarry(
        &[
            "ask",
            "--mode",
            "direct",
            "--folder",
            folder.path().to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--ctx",
            "1024",
            "--max-tokens",
            "8",
            "--json",
            "What animal jumps?",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("warning: the folder does not fit in a 1024-token window"), "{err}");
    let v = result_line(&out.stdout);
    let notice = v["notices"][0].as_str().unwrap();
    assert!(notice.contains("the model sees 2 of 6 files") || notice.contains("of 6 files"), "{notice}");
    // The answer itself says it saw part of the folder.
    let answer = v["answer"].as_str().unwrap();
    assert!(answer.contains("of the folder's 6 files"), "{answer}");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() <= 1024 - 8);
}

#[test]
fn ask_errors_name_the_folder_or_the_model_file() {
    let out =
        quarry(&["ask", "--folder", "/no/such/folder", "--model", small_model_path().to_str().unwrap(), "hi"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/no/such/folder"), "{}", text(&out.stderr));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "text").unwrap();
    let bad = dir.path().join("broken.gguf");
    std::fs::write(&bad, "GGUF but not really").unwrap();
    let out = quarry(&["ask", "--folder", dir.path().to_str().unwrap(), "--model", bad.to_str().unwrap(), "hi"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("broken.gguf is not a usable GGUF model file"), "{}", text(&out.stderr));
}

#[test]
fn ask_in_rlm_mode_finds_a_needle_through_the_repl_and_saves_the_trajectory() {
    let folder = tempfile::tempdir().unwrap();
    for i in 1..=5 {
        std::fs::write(
            folder.path().join(format!("report{i}.txt")),
            format!("Quarterly notes, part {i}.\nRevenue grew in the north region.\n"),
        )
        .unwrap();
    }
    std::fs::write(
        folder.path().join("memo.txt"),
        "Facilities memo.\nThe storage room code is 7391.\nLights off at 8pm.\n",
    )
    .unwrap();
    let model = small_model_path();
    let trajectory = folder.path().join("run.jsonl");
    let out = quarry(
        &[
            "ask",
            "--mode",
            "rlm",
            "--folder",
            folder.path().to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--sub-model",
            model.to_str().unwrap(),
            "--trajectory",
            trajectory.to_str().unwrap(),
            "--json",
            "What is the storage room code?",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = result_line(&out.stdout);
    assert!(v["answer"].as_str().unwrap_or("").contains("7391"), "{v}");
    assert_eq!(v["stop_reason"], "final");
    // The run's events came first, live, one JSON line each.
    let stdout = text(&out.stdout);
    let types: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    for t in ["run_started", "iteration_started", "model_delta", "code_block", "repl_result", "answer", "final"] {
        assert!(types.iter().any(|x| x == t), "no {t} event in {types:?}");
    }
    assert_eq!(types[0], "run_started");
    assert!(v["iterations"].as_u64().unwrap() >= 1);
    let lines = std::fs::read_to_string(&trajectory).unwrap();
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "metadata");
    assert!(lines.lines().count() >= 2, "one line per iteration after the metadata");
}

#[test]
fn eval_writes_scoreable_predictions_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    for (id, code) in [("t1", "7391"), ("t2", "5520")] {
        let folder = dir.path().join(id);
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("memo.txt"), format!("Facilities memo.\nThe storage room code is {code}.\n"))
            .unwrap();
        std::fs::write(folder.join("menu.txt"), "Monday: soup\nTuesday: pasta\n").unwrap();
    }
    let tasks = dir.path().join("tasks.jsonl");
    let line = |id: &str| {
        serde_json::json!({"id": id, "kind": "needle", "context_dir": id, "question": "What is the storage room code?", "meta": {"size": "tiny"}})
            .to_string()
    };
    std::fs::write(&tasks, format!("{}\n{}\n", line("t1"), line("t2"))).unwrap();
    let pred = dir.path().join("pred.jsonl");
    let model = small_model_path();
    let args = |limit: &str| {
        vec![
            "eval".to_string(),
            tasks.to_str().unwrap().into(),
            "--mode".into(),
            "rag".into(),
            "--out".into(),
            pred.to_str().unwrap().into(),
            "--model".into(),
            model.to_str().unwrap().into(),
            "--limit".into(),
            limit.into(),
        ]
    };
    let run = |limit: &str| {
        let a = args(limit);
        quarry(&a.iter().map(String::as_str).collect::<Vec<_>>(), None)
    };
    // One task, then the rest: the first is not run again.
    let out = run("1");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run("5");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("1 already in"), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&pred).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|v| v["id"].as_str().unwrap()).collect::<Vec<_>>(), ["t1", "t2"]);
    assert!(lines[0]["answer"].as_str().unwrap().contains("7391"), "{:?}", lines[0]);
    assert!(lines[1]["answer"].as_str().unwrap().contains("5520"), "{:?}", lines[1]);
    for v in &lines {
        assert!(v["seconds"].as_f64().unwrap() > 0.0 && v["tokens"].as_u64().unwrap() > 0, "{v}");
        assert_eq!(v["mode"], "rag");
    }

    // A bad line names the file and the line.
    std::fs::write(&tasks, format!("{}\nnot json\n", line("t1"))).unwrap();
    let out = run("5");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("tasks.jsonl:2: not a task"), "{}", text(&out.stderr));
}

/// A folder whose answer is checkable, for the history's tests.
fn memo(dir: &Path) {
    std::fs::write(dir.join("memo.txt"), "Facilities memo.\nThe storage room code is 7391.\nLights off at 8pm.\n")
        .unwrap();
}

#[test]
fn ask_records_its_run_and_history_shows_searches_and_exports_it_but_not_with_no_history() {
    use crate::history::{data_dir, quarry as quarry_in};
    let data = data_dir("ask-records");
    let folder = tempfile::tempdir().unwrap();
    memo(folder.path());
    let model = small_model_path();
    let ask = |extra: &[&str]| {
        let mut args = vec!["ask", "--mode", "direct", "--folder", folder.path().to_str().unwrap()];
        args.extend(["--model", model.to_str().unwrap(), "--sub-model", model.to_str().unwrap(), "--json"]);
        args.extend_from_slice(extra);
        args.push("What is the storage room code?");
        quarry_in(&data, &args)
    };
    let out = ask(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = result_line(&out.stdout);
    let id = v["run_id"].as_i64().unwrap_or_else(|| panic!("no run_id: {v}"));
    assert!(text(&out.stderr).contains(&format!("saved as run {id}")), "{}", text(&out.stderr));

    let out = quarry_in(&data, &["history", "show", &id.to_string(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["status"], "done");
    assert_eq!(run["question"], "What is the storage room code?");
    assert_eq!(run["answer"], v["answer"]);
    assert_eq!(run["citations"], v["citations"]);
    assert_eq!(run["mode"], "direct");
    assert_eq!(run["models"]["root"], model.to_str().unwrap());
    assert_eq!(run["folder"], folder.path().canonicalize().unwrap().to_str().unwrap());
    // The streamed answer is stored as its events, joined back to the same text.
    let streamed: String = run["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "model_delta")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed.trim(), v["answer"].as_str().unwrap().trim());

    let out = quarry_in(&data, &["history", "search", "storage room", "--json"]);
    let hits: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hits[0]["id"], id);
    let out = quarry_in(&data, &["history", "export", &id.to_string(), "--format", "md"]);
    let md = text(&out.stdout);
    assert!(md.starts_with("# What is the storage room code?") && md.contains("## Answer"), "{md}");

    let out = ask(&["--no-history"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(result_line(&out.stdout)["run_id"], serde_json::Value::Null);
    let out = quarry_in(&data, &["history", "list", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "--no-history records nothing: {runs}");
}

#[test]
fn a_run_killed_half_way_shows_as_interrupted_with_its_events() {
    use std::io::BufRead;
    let data = crate::history::data_dir("killed");
    let folder = tempfile::tempdir().unwrap();
    memo(folder.path());
    let model = small_model_path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["ask", "--mode", "rlm", "--folder", folder.path().to_str().unwrap()])
        .args(["--model", model.to_str().unwrap(), "--sub-model", model.to_str().unwrap(), "--json"])
        .arg("What is the storage room code?")
        .env("QUARRY_DATA_DIR", &data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        if line.unwrap().contains("\"type\":\"iteration_started\"") {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL: nothing of the process runs after this
    child.wait().unwrap();

    let out = crate::history::quarry(&data, &["history", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs[0]["status"], "interrupted", "{runs}");
    let id = runs[0]["id"].to_string();
    let out = crate::history::quarry(&data, &["history", "show", &id, "--json"]);
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let types: Vec<&str> = run["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(&types[..2], ["run_started", "iteration_started"], "{types:?}");
    let out = crate::history::quarry(&data, &["history", "show", &id]);
    assert!(text(&out.stdout).contains("interrupted"), "{}", text(&out.stdout));
}
