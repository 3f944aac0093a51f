//! The history (quarry_index::history) over a real catalog database: runs written as they
//! happen, listed newest first and filtered, searched with FTS5, exported, removed, and a run
//! whose process died shown as interrupted.

use quarry_index::history::{ExportFormat, Finish, History, ListFilter, NewRun, RunStatus};
use quarry_index::{Error, Library};
use serde_json::json;

fn done(answer: &str) -> Finish {
    Finish {
        status: RunStatus::Done,
        answer: Some(answer.into()),
        citations: json!([
            {"path": "leases/acme.pdf", "location": "leases/acme.pdf p. 3, lines 4–5", "status": "verified", "verified": true},
            {"path": "ghost.txt", "location": "ghost.txt:9", "status": "failed", "verified": false, "problem": "no such file"}
        ]),
        stats: json!({"stop_reason": "final", "iterations": 2, "sub_calls": 3, "seconds": 4.31}),
        error: None,
    }
}

/// A pid no process has: a child that ran and was reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn runs_are_listed_newest_first_filtered_shown_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut library = Library::open(dir.path()).unwrap();
    let leases = tempfile::tempdir().unwrap();
    library.add(leases.path(), Some("leases")).unwrap();

    let h = History::open_in(dir.path()).unwrap();
    let mut first = NewRun::new("Which leases renew automatically?", "rlm", leases.path());
    first.collection = Some("leases".into());
    first.models = json!({"root": "qwen-1.5b", "sub": "qwen-0.5b"});
    let a = h.start(&first).unwrap();
    h.append(a, &[json!({"type": "iteration_started", "index": 1}).to_string()]).unwrap();
    h.append(
        a,
        &[
            json!({"type": "code_block", "iteration": 1, "index": 1, "code": "print(grep('renew'))"}).to_string(),
            json!({"type": "repl_result", "iteration": 1, "index": 1, "result": {"stdout": "acme.pdf:40 renews", "stderr": "", "error": null, "value": null, "final_answer": null, "restarted": false}}).to_string(),
        ],
    )
    .unwrap();
    h.finish(a, &done("The Acme lease renews every year (leases/acme.pdf p. 3, lines 4–5).")).unwrap();
    let b = h.start(&NewRun::new("How many invoices are overdue?", "direct", "/data/invoices".as_ref())).unwrap();
    h.finish(
        b,
        &Finish {
            status: RunStatus::Failed,
            answer: None,
            citations: json!([]),
            stats: json!({}),
            error: Some("the engine stopped".into()),
        },
    )
    .unwrap();
    let c = h.start(&NewRun::new("And the notice period?", "auto", leases.path())).unwrap();
    drop(h);

    // Another process's view, after the first closed its connection.
    let h = History::open_in(dir.path()).unwrap();
    let all = h.list(&ListFilter::default()).unwrap();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [c, b, a]);
    assert_eq!(all[0].status, RunStatus::Running, "this process is still alive");
    assert_eq!(all[1].status, RunStatus::Failed);
    assert_eq!(all[2].preview.as_deref(), Some("The Acme lease renews every year (leases/acme.pdf p. 3, lines 4–5)."));
    assert_eq!(all[2].collection.as_deref(), Some("leases"));

    let by = |filter: ListFilter| h.list(&filter).unwrap().iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(by(ListFilter { collection: Some("leases".into()), ..Default::default() }), [a]);
    assert_eq!(by(ListFilter { status: Some(RunStatus::Failed), ..Default::default() }), [b]);
    assert_eq!(by(ListFilter { folder: Some("/data/invoices".into()), ..Default::default() }), [b]);
    assert_eq!(by(ListFilter { limit: Some(2), ..Default::default() }), [c, b]);

    let run = h.get(a).unwrap();
    assert_eq!(run.status, RunStatus::Done);
    assert_eq!(run.models["root"], "qwen-1.5b");
    assert_eq!(run.events.len(), 3);
    assert_eq!(run.events[1]["code"], "print(grep('renew'))");
    assert_eq!(run.citations.as_array().unwrap().len(), 2);
    assert!(run.finished_ms.unwrap() >= run.started_ms);
    assert_eq!(h.get(b).unwrap().error.as_deref(), Some("the engine stopped"));

    // Removing the collection keeps what was asked of it.
    library.remove("leases").unwrap();
    assert_eq!(h.get(a).unwrap().collection.as_deref(), Some("leases"));
}

#[test]
fn search_matches_words_of_questions_and_answers_by_prefix_and_ranks_them() {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open_in(dir.path()).unwrap();
    let a = h.start(&NewRun::new("Which agreements can be terminated for convenience?", "rlm", "/d".as_ref())).unwrap();
    h.finish(a, &done("The MSA, with 30 days' notice.")).unwrap();
    let b = h.start(&NewRun::new("What is the notice period?", "rlm", "/d".as_ref())).unwrap();
    h.finish(b, &done("Ninety days' notice, or notice by email.")).unwrap();
    let c = h.start(&NewRun::new("Who signed the lease?", "rlm", "/d".as_ref())).unwrap();
    h.finish(c, &done("Jane Roe.")).unwrap();

    let ids = |text: &str| h.search(text, 10).unwrap().iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids("notice"), [b, a], "more mentions rank first");
    assert_eq!(ids("termin conv"), [a], "words are prefixes, all of them required");
    assert_eq!(ids("jane"), [c], "the answer is searched too");
    assert_eq!(ids("Jane's \"lease\" - OR"), Vec::<i64>::new(), "operators are plain words");
    assert!(ids("lease?").contains(&c), "punctuation is not FTS5 syntax");
    let hit = &h.search("period", 10).unwrap()[0];
    assert!(hit.snippet.as_deref().unwrap().contains("[period]"), "{hit:?}");
    let err = h.search("?!", 10).unwrap_err();
    assert!(matches!(err, Error::EmptySearch { .. }), "{err}");

    // An answer written by finish() is searchable; one removed is not.
    h.remove(b).unwrap();
    assert_eq!(ids("notice"), [a]);
}

#[test]
fn a_run_whose_process_died_shows_as_interrupted_with_what_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open_in(dir.path()).unwrap();
    let mut killed = NewRun::new("Which files mention the audit?", "rlm", "/d".as_ref());
    killed.pid = dead_pid();
    let id = h.start(&killed).unwrap();
    h.append(id, &[json!({"type": "iteration_started", "index": 1}).to_string()]).unwrap();
    let alive = h.start(&NewRun::new("Still going?", "rlm", "/d".as_ref())).unwrap();

    let listed = h.list(&ListFilter::default()).unwrap();
    assert_eq!(
        listed.iter().map(|r| (r.id, r.status)).collect::<Vec<_>>(),
        [(alive, RunStatus::Running), (id, RunStatus::Interrupted)]
    );
    let run = h.get(id).unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    assert_eq!(run.events.len(), 1, "its events are kept");
    assert!(run.error.unwrap().contains("ended before the run did"));
    let only = h.list(&ListFilter { status: Some(RunStatus::Interrupted), ..Default::default() }).unwrap();
    assert_eq!(only.len(), 1);
    // An interrupted run can be removed; a running one cannot.
    assert!(matches!(h.remove(alive), Err(Error::RunRunning { .. })));
    h.remove(id).unwrap();
}

#[test]
fn exports_are_markdown_with_sources_json_and_event_lines() {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open_in(dir.path()).unwrap();
    let mut new = NewRun::new("Which leases renew?", "rlm", "/data/leases".as_ref());
    new.models = json!({"root": "qwen-1.5b", "sub": "qwen-0.5b"});
    let id = h.start(&new).unwrap();
    let events = [
        json!({"type": "notice", "message": "auto: the folder is larger than the window"}),
        json!({"type": "iteration_started", "index": 1}),
        json!({"type": "code_block", "iteration": 1, "index": 1, "code": "print('```')"}),
        json!({"type": "sub_call_finished", "id": 0, "ok": true, "response_preview": "", "usage": {}, "seconds": 0.1}),
        json!({"type": "repl_result", "iteration": 1, "index": 1, "result": {"stdout": "```\n", "error": null}}),
    ];
    h.append(id, &events.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap();
    h.finish(id, &done("The Acme lease.")).unwrap();

    let md = h.export(id, ExportFormat::Markdown).unwrap();
    assert!(md.starts_with("# Which leases renew?\n"), "{md}");
    for part in [
        "- **Folder:** `/data/leases`",
        "**Models:** qwen-1.5b (root), qwen-0.5b (sub)",
        "ended by final, 2 turns, 3 sub-calls, 4.3 s",
        "## Answer\n\nThe Acme lease.",
        "- ✓ `leases/acme.pdf p. 3, lines 4–5`",
        "- ✗ `ghost.txt:9` — no such file",
        "- auto: the folder is larger than the window",
        "### Turn 1",
        "````python\nprint('```')\n````",
        "_1 sub-call_",
    ] {
        assert!(md.contains(part), "{part:?} missing from:\n{md}");
    }

    let json: serde_json::Value = serde_json::from_str(&h.export(id, ExportFormat::Json).unwrap()).unwrap();
    assert_eq!((json["id"].as_i64(), json["status"].as_str()), (Some(id), Some("done")));
    assert_eq!(json["events"].as_array().unwrap().len(), events.len());
    assert_eq!(json["citations"][1]["problem"], "no such file");

    let lines = h.export(id, ExportFormat::Jsonl).unwrap();
    let parsed: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(parsed, events);
    assert_eq!("md".parse::<ExportFormat>(), Ok(ExportFormat::Markdown));
    assert!("pdf".parse::<ExportFormat>().unwrap_err().contains("md, json and jsonl"));
}

#[test]
fn a_missing_run_is_one_sentence_naming_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open_in(dir.path()).unwrap();
    let expected = "there is no run 42 in the history; `quarry history list` shows the runs there are";
    assert_eq!(h.get(42).unwrap_err().to_string(), expected);
    assert_eq!(h.remove(42).unwrap_err().to_string(), expected);
    assert_eq!(h.export(42, ExportFormat::Markdown).unwrap_err().to_string(), expected);
    assert_eq!(h.append(42, &["{}".into()]).unwrap_err().to_string(), expected);
    let finish = Finish { status: RunStatus::Done, answer: None, citations: json!([]), stats: json!({}), error: None };
    assert_eq!(h.finish(42, &finish).unwrap_err().to_string(), expected);
}
