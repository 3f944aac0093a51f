//! `quarry repl` and `quarry bench repl` end to end: the real `quarry` binary serving as its own
//! worker (`quarry worker repl`), which also proves it loads the right libpython.

use std::path::Path;
use std::process::Command;

fn quarry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quarry"))
}

fn exec_json(dir: &Path, code: &str, extra: &[&str]) -> serde_json::Value {
    let file = dir.join("cell.py");
    std::fs::write(&file, code).unwrap();
    let out = quarry().arg("repl").args(extra).arg("--exec").arg(&file).arg("--json").output().unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn repl_exec_json_prints_one_result() {
    let dir = tempfile::tempdir().unwrap();
    let r = exec_json(dir.path(), "import sys\nprint('hi')\nx = sys.version_info[:2]\nx", &[]);
    assert_eq!(r["stdout"], "hi\n");
    assert_eq!(r["error"], serde_json::Value::Null);
    assert_eq!(r["value"], "(3, 11)");
    assert_eq!(r["restarted"], false);
    assert!(r["duration"].as_f64().unwrap() >= 0.0);
}

#[test]
fn repl_over_a_folder_sees_its_documents_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("docs");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("a.txt"), "alpha\nbeta\n").unwrap();
    std::fs::write(folder.join("b.md"), "# title\n").unwrap();
    let doc = folder.join("a.txt").display().to_string();
    let code = format!(
        "import os\nprint(len(context), context.paths(), files('*.md'))\ntry:\n    os.remove({doc:?})\nexcept PermissionError:\n    print('denied')\nread('a.txt', 2, 2)"
    );
    let folder_arg = folder.display().to_string();
    let r = exec_json(dir.path(), &code, &["--folder", &folder_arg]);
    assert_eq!(r["stdout"], "2 ['a.txt', 'b.md'] ['b.md']\ndenied\n", "{r}");
    assert_eq!(r["value"], "'beta'");
    assert!(folder.join("a.txt").exists());
}

/// `quarry repl --folder` greps with regular expressions and ranks with BM25, as the RLM's root
/// model does (it used to match substrings for both).
#[test]
fn repl_over_a_folder_greps_with_regexes_and_searches_by_bm25() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("docs");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("a.txt"), "the needle is 42\nhay\n").unwrap();
    std::fs::write(folder.join("b.md"), "needle needle needle\nwhere the needle is not a number\n").unwrap();
    let code = "print([(h['path'], h['line']) for h in grep(r'needle is \\d+')])\nprint([h['path'] for h in search('needle', k=2)])";
    let folder_arg = folder.display().to_string();
    let r = exec_json(dir.path(), code, &["--folder", &folder_arg]);
    assert_eq!(r["stdout"], "[('a.txt', 1)]\n['b.md', 'a.txt']\n", "{r}");
}

#[test]
fn repl_exec_reports_sandbox_denials_and_fails_without_json() {
    let dir = tempfile::tempdir().unwrap();
    let r = exec_json(dir.path(), "open('/etc/passwd').read()", &[]);
    assert!(r["error"].as_str().unwrap().contains("PermissionError"), "{r}");
    let file = dir.path().join("bad.py");
    std::fs::write(&file, "1 / 0").unwrap();
    let out = quarry().args(["repl", "--exec"]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ZeroDivisionError"));
}

#[test]
fn bench_repl_json_reports_every_figure() {
    let out = quarry()
        .args(["bench", "repl", "--json", "--spawns", "2", "--round-trips", "20", "--context-mb", "4"])
        .output()
        .unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["worker_spawn_ms", "empty_execution_ms", "llm_query_overhead_ms", "context_load_ms"] {
        assert!(v[key].is_object(), "{key} missing in {v}");
    }
    assert!(v["worker_spawn_ms"]["median"].as_f64().unwrap() > 0.0);
    assert_eq!(v["context_load_ms"]["mb"], 4);
    assert!(v["confinement"].as_array().unwrap().iter().any(|m| m == "landlock"), "{v}");
}
