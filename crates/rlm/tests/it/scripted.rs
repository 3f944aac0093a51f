//! The RLM loop end to end with a scripted fake root model, a fake sub model and the real
//! sandboxed REPL worker.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quarry_index::Folder;
use quarry_llm::{ChatRequest, Completion, DeltaSink, FinishReason, LanguageModel, Timings, Usage};
use quarry_repl::{SandboxConfig, WorkerCommand};
use quarry_rlm::{AnswerSource, Budget, CancelToken, Event, Rlm, RlmConfig, RunResult, StopReason};

/// Replies with its script in order; records every request.
struct Scripted {
    replies: Mutex<VecDeque<String>>,
    requests: Mutex<Vec<ChatRequest>>,
    /// Thinks this long before the reply with this index (0-based).
    pause: Option<(usize, Duration)>,
}

impl Scripted {
    fn new(replies: &[&str]) -> Arc<Scripted> {
        Arc::new(Scripted {
            replies: Mutex::new(replies.iter().map(|s| s.to_string()).collect()),
            requests: Mutex::new(Vec::new()),
            pause: None,
        })
    }

    fn requests(&self) -> Vec<ChatRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// The last user message of request `i`.
    fn last_user(&self, i: usize) -> String {
        self.requests()[i].messages.iter().rev().find(|m| m.role == "user").unwrap().content.clone()
    }
}

fn completion(text: String) -> Completion {
    Completion {
        text,
        finish_reason: FinishReason::Stop,
        usage: Usage { prompt_tokens: 10, cached_tokens: 0, completion_tokens: 5 },
        timings: Timings::default(),
        model: "fake".into(),
    }
}

#[async_trait::async_trait]
impl LanguageModel for Scripted {
    fn name(&self) -> &str {
        "scripted-root"
    }

    async fn chat_stream(&self, request: &ChatRequest, sink: &mut dyn DeltaSink) -> quarry_llm::Result<Completion> {
        let n = {
            let mut requests = self.requests.lock().unwrap();
            requests.push(request.clone());
            requests.len() - 1
        };
        if let Some((_, pause)) = self.pause.filter(|(at, _)| *at == n) {
            tokio::time::sleep(pause).await;
        }
        let text = self.replies.lock().unwrap().pop_front().unwrap_or_else(|| "(script exhausted)".into());
        // Stream in two pieces so deltas are really forwarded piecewise.
        let mid = text.char_indices().nth(text.chars().count() / 2).map(|(i, _)| i).unwrap_or(0);
        for piece in [&text[..mid], &text[mid..]] {
            if !sink.delta(piece) {
                let mut c = completion(text[..mid].to_string());
                c.finish_reason = FinishReason::Cancelled;
                return Ok(c);
            }
        }
        Ok(completion(text))
    }
}

/// Answers `sub: <prompt>`. With `gate`, each call waits until `gate` calls are in flight at
/// once (or gives up after a few seconds and says so), which proves concurrency without timing.
struct Sub {
    prompts: Mutex<Vec<String>>,
    gate: Option<Arc<tokio::sync::Barrier>>,
}

impl Sub {
    fn new() -> Arc<Sub> {
        Arc::new(Sub { prompts: Mutex::new(Vec::new()), gate: None })
    }
}

#[async_trait::async_trait]
impl LanguageModel for Sub {
    fn name(&self) -> &str {
        "fake-sub"
    }

    async fn chat_stream(&self, request: &ChatRequest, _: &mut dyn DeltaSink) -> quarry_llm::Result<Completion> {
        let prompt = request.messages.last().unwrap().content.clone();
        self.prompts.lock().unwrap().push(prompt.clone());
        let mut text = format!("sub: {prompt}");
        if let Some(gate) = &self.gate {
            if tokio::time::timeout(Duration::from_secs(10), gate.wait()).await.is_err() {
                text = "not concurrent".into();
            }
        }
        Ok(completion(text))
    }
}

fn folder() -> (tempfile::TempDir, Folder) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "alpha\nthe needle is 42\nomega\n").unwrap();
    std::fs::create_dir(dir.path().join("notes")).unwrap();
    std::fs::write(dir.path().join("notes/b.md"), "# Notes\nnothing to see\n").unwrap();
    let f = Folder::load(dir.path()).unwrap();
    (dir, f)
}

/// The REPL worker the workspace builds (`quarry-repl-worker`, crates/repl-worker), found beside
/// this test's own directory: cargo puts a workspace's executables in target/<profile>/ and test
/// executables in target/<profile>/deps/. A package's tests see only their own package's
/// executables through `CARGO_BIN_EXE_*`, and a bin of this crate that ran the worker would
/// make quarry-rlm, and the desktop with it, link libpython (issue 18.8).
fn repl_worker() -> std::path::PathBuf {
    let test = std::env::current_exe().expect("the test executable's path");
    let profile = test.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>");
    let worker = profile.join("quarry-repl-worker");
    assert!(
        worker.is_file(),
        "{} is missing: build it with `cargo build --release --workspace` (cargo test --workspace builds it too)",
        worker.display()
    );
    worker
}

fn config(budget: Budget) -> RlmConfig {
    RlmConfig {
        budget,
        sandbox: SandboxConfig {
            worker: WorkerCommand { program: repl_worker(), args: vec![] },
            timeout: Duration::from_secs(20),
            ..Default::default()
        },
        ..Default::default()
    }
}

struct Outcome {
    result: RunResult,
    events: Vec<Event>,
    root: Arc<Scripted>,
    sub: Arc<Sub>,
}

async fn run_with(replies: &[&str], budget: Budget, sub: Arc<Sub>) -> Outcome {
    let root = Scripted::new(replies);
    let (_dir, folder) = folder();
    let rlm = Rlm::new(root.clone(), sub.clone(), config(budget));
    let mut events = Vec::new();
    let result = rlm
        .run(&folder, "What is the needle?", CancelToken::default(), |e| events.push(e.clone()))
        .await
        .expect("the run completes");
    Outcome { result, events, root, sub }
}

async fn run(replies: &[&str]) -> Outcome {
    run_with(replies, Budget::default(), Sub::new()).await
}

fn answer_source(events: &[Event]) -> Option<AnswerSource> {
    events.iter().find_map(|e| match e {
        Event::Answer { source, .. } => Some(*source),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_called_in_code_after_grep_output_was_fed_back() {
    let o = run(&[
        "Let me search.\n```repl\nhits = grep('needle')\nprint(hits[0]['path'], hits[0]['text'])\n```",
        "```repl\nFINAL(hits[0]['text'])\n```",
    ])
    .await;
    assert_eq!(o.result.answer.as_deref(), Some("the needle is 42"));
    assert_eq!(o.result.stop_reason, StopReason::Final);
    assert_eq!(o.result.iterations, 2);
    assert_eq!(answer_source(&o.events), Some(AnswerSource::Code));
    let fed_back = o.root.last_user(1);
    assert!(fed_back.contains("a.txt the needle is 42"), "{fed_back}");
    assert!(fed_back.contains("REPL variables: hits (list, len 1)"), "{fed_back}");
    // The first prompt describes the folder without its contents.
    let first = o.root.last_user(0);
    assert!(first.contains("2 files") && first.contains("notes/b.md"), "{first}");
    assert!(!first.contains("needle is 42"), "{first}");
    assert_eq!(o.root.requests()[0].messages[0].role, "system");
    // Usage: two root turns of 15 tokens each, no sub calls.
    assert_eq!(o.result.usage.total(), 30);
    assert!(matches!(o.events.first(), Some(Event::RunStarted { .. })));
    assert!(matches!(o.events.last(), Some(Event::Final { stop_reason: StopReason::Final, iterations: 2, .. })));
    let deltas: String = o
        .events
        .iter()
        .filter_map(|e| match e {
            Event::ModelDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(deltas.starts_with("Let me search.") && deltas.ends_with("FINAL(hits[0]['text'])\n```"), "{deltas}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_in_prose_with_nested_parentheses() {
    let o = run(&["```repl\nx = 6 * 7\nprint(x)\n```", "It is 42.\nFINAL(42 (see a.txt (line 2)))"]).await;
    assert_eq!(o.result.answer.as_deref(), Some("42 (see a.txt (line 2))"));
    assert_eq!(o.result.iterations, 2);
    assert_eq!(answer_source(&o.events), Some(AnswerSource::Prose));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_var_in_prose_reads_a_variable_set_by_the_same_reply() {
    let o = run(&["```repl\nresult = 'forty' + '-two'\n```\nFINAL_VAR(result)"]).await;
    assert_eq!(o.result.answer.as_deref(), Some("forty-two"));
    assert_eq!(o.result.iterations, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_var_naming_a_missing_variable_is_fed_back_not_taken() {
    // No code runs in this script, so the evidence check (tested on its own below) is off.
    let o = run_unchecked(&["FINAL_VAR(nope)", "FINAL(fixed)"]).await;
    assert_eq!(o.result.answer.as_deref(), Some("fixed"));
    assert_eq!(o.result.iterations, 2);
    let fed_back = o.root.last_user(1);
    assert!(fed_back.contains("Your FINAL did not count") && fed_back.contains("nope"), "{fed_back}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_dict_counts_only_when_ready() {
    let o = run(&[
        "```repl\nanswer = {'content': 'draft', 'ready': False}\n```",
        "```repl\nanswer['content'] = 'the needle is 42'\nanswer['ready'] = True\n```",
    ])
    .await;
    assert_eq!(o.result.answer.as_deref(), Some("the needle is 42"));
    assert_eq!(o.result.iterations, 2, "the draft was not taken");
    assert_eq!(answer_source(&o.events), Some(AnswerSource::AnswerVariable));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_mentioned_in_a_sentence_is_not_an_answer() {
    let o = run(&["I will call FINAL(answer) when done.\n```repl\nprint(1)\n```", "FINAL(real)"]).await;
    assert_eq!(o.result.answer.as_deref(), Some("real"));
    assert_eq!(o.result.iterations, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prose_final_beside_failing_code_is_ignored() {
    // The only code fails before it prints, so the evidence check (tested below) is off.
    let o = run_unchecked(&["```repl\nprint(missing)\n```\nFINAL_VAR(missing)", "FINAL(checked)"]).await;
    assert_eq!(o.result.answer.as_deref(), Some("checked"));
    assert!(o.root.last_user(1).contains("ignored because your code failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prose_final_text_beside_code_waits_for_the_output() {
    let o = run(&["```repl\nprint(grep('needle')[0]['text'])\n```\nFINAL(2760)", "FINAL(42)"]).await;
    assert_eq!(o.result.answer.as_deref(), Some("42"));
    assert_eq!(o.result.iterations, 2);
    let fed_back = o.root.last_user(1);
    assert!(
        fed_back.contains("the needle is 42") && fed_back.contains("before you saw your code's output"),
        "{fed_back}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_iterations_ends_with_an_answer_from_what_it_has() {
    let budget = Budget { max_iterations: 2, ..Default::default() };
    let o = run_with(
        &["```repl\nprint(1)\n```", "```repl\nprint(2)\n```", "FINAL(best guess: 42)", "never asked"],
        budget,
        Sub::new(),
    )
    .await;
    assert_eq!(o.result.stop_reason, StopReason::MaxIterations);
    assert_eq!(o.result.answer.as_deref(), Some("best guess: 42"));
    assert_eq!(o.result.iterations, 2);
    assert_eq!(o.root.requests().len(), 3, "two turns and the last answering call");
    let last = o.root.last_user(2);
    assert!(last.contains("used all your turns") && last.contains("No more code will run"), "{last}");
    assert_eq!(answer_source(&o.events), Some(AnswerSource::Forced));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_answer_without_final_takes_the_whole_reply() {
    let budget = Budget { max_iterations: 1, ..Default::default() };
    let o = run_with(&["```repl\nprint(1)\n```", "  It is 42.  "], budget, Sub::new()).await;
    assert_eq!(o.result.answer.as_deref(), Some("It is 42."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_errors_stop_the_run() {
    let budget = Budget { max_consecutive_errors: 2, ..Default::default() };
    let o =
        run_with(&["```repl\n1 / 0\n```", "```repl\nundefined_name\n```", "FINAL(gave up)"], budget, Sub::new()).await;
    assert_eq!(o.result.stop_reason, StopReason::ConsecutiveErrors);
    assert_eq!(o.result.iterations, 2);
    assert_eq!(o.result.answer.as_deref(), Some("gave up"));
    assert!(o.root.last_user(1).contains("ZeroDivisionError"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_resets_the_error_count_and_no_code_counts_as_an_error() {
    let budget = Budget { max_consecutive_errors: 2, ..Default::default() };
    let o = run_with(
        &["```repl\n1 / 0\n```", "```repl\nprint('ok')\n```", "```repl\n1 / 0\n```", "Hmm, let me think.", "FINAL(x)"],
        budget,
        Sub::new(),
    )
    .await;
    assert_eq!(o.result.stop_reason, StopReason::ConsecutiveErrors);
    assert_eq!(o.result.iterations, 4);
    let last = &o.root.requests()[4].messages;
    let nudge = &last[last.len() - 2];
    assert!(nudge.role == "user" && nudge.content.starts_with("Your reply had no ```repl code block"), "{nudge:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_stops_without_a_last_call() {
    let root = Scripted::new(&["```repl\nprint(1)\n```", "```repl\nprint(2)\n```", "FINAL(no)"]);
    let (_dir, folder) = folder();
    let rlm = Rlm::new(root.clone(), Sub::new(), config(Budget::default()));
    let cancel = CancelToken::default();
    let flag = cancel.clone();
    let mut saw_final = None;
    let result = rlm
        .run(&folder, "q?", cancel, |e| match e {
            Event::ReplResult { .. } => flag.cancel(),
            Event::Final { stop_reason, .. } => saw_final = Some(*stop_reason),
            _ => {}
        })
        .await
        .unwrap();
    assert_eq!(result.stop_reason, StopReason::Cancelled);
    assert_eq!(result.answer, None);
    assert_eq!(root.requests().len(), 1);
    assert_eq!(saw_final, Some(StopReason::Cancelled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_during_streaming_stops_the_root_call() {
    let root = Scripted::new(&["```repl\nprint(1)\n```"]);
    let (_dir, folder) = folder();
    let rlm = Rlm::new(root.clone(), Sub::new(), config(Budget::default()));
    let cancel = CancelToken::default();
    let flag = cancel.clone();
    let mut blocks = 0;
    let result = rlm
        .run(&folder, "q?", cancel, |e| match e {
            Event::ModelDelta { .. } => flag.cancel(),
            Event::CodeBlock { .. } => blocks += 1,
            _ => {}
        })
        .await
        .unwrap();
    assert_eq!(result.stop_reason, StopReason::Cancelled);
    assert_eq!(blocks, 0, "nothing ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_survives_a_repl_restart() {
    let o = run(&[
        "```repl\nx = 1\nimport os\nos._exit(3)\n```",
        "```repl\nprint('x' in globals(), len(context))\n```",
        "FINAL(recovered)",
    ])
    .await;
    assert_eq!(o.result.answer.as_deref(), Some("recovered"));
    assert_eq!(o.result.iterations, 3);
    let t = &o.result.trajectory.iterations;
    assert!(t[0].code_blocks[0].result.restarted);
    assert_eq!(t[1].code_blocks[0].result.stdout.trim(), "False 2", "variables gone, context reloaded");
    assert!(o.root.last_user(1).contains("The REPL was restarted"), "{}", o.root.last_user(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_query_goes_to_the_sub_model_and_is_counted() {
    let o = run(&[
        "```repl\nr = llm_query('summarize: ' + context[0].text)\nrs = llm_query_batched(['a', 'b', 'c'])\nprint(r)\nprint(rs)\n```",
        "FINAL(ok)",
    ])
    .await;
    assert_eq!(o.result.sub_calls, 4);
    let mut prompts = o.sub.prompts.lock().unwrap().clone();
    prompts.sort();
    assert_eq!(prompts, ["a", "b", "c", "summarize: alpha\nthe needle is 42\nomega\n"]);
    let fed_back = o.root.last_user(1);
    assert!(
        fed_back.contains("sub: summarize: alpha") && fed_back.contains("['sub: a', 'sub: b', 'sub: c']"),
        "{fed_back}"
    );
    assert_eq!(o.result.sub_usage.total(), 4 * 15);
    assert_eq!(o.result.usage.total(), 2 * 15 + 4 * 15);
    let started = o.events.iter().filter(|e| matches!(e, Event::SubCallStarted { .. })).count();
    let finished = o.events.iter().filter(|e| matches!(e, Event::SubCallFinished { ok: true, .. })).count();
    assert_eq!((started, finished), (4, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_query_batched_runs_its_prompts_concurrently() {
    let sub = Arc::new(Sub { prompts: Mutex::new(Vec::new()), gate: Some(Arc::new(tokio::sync::Barrier::new(3))) });
    let o = run_with(&["```repl\nprint(llm_query_batched(['x', 'y', 'z']))\n```", "FINAL(ok)"], Budget::default(), sub)
        .await;
    let fed_back = o.root.last_user(1);
    assert!(fed_back.contains("['sub: x', 'sub: y', 'sub: z']"), "{fed_back}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_asked_again_in_the_run_is_answered_without_a_sub_call() {
    let o = run(&[
        "```repl\nprint(llm_query_batched(['a', 'b']))\n```",
        "```repl\nprint(llm_query_batched(['b', 'c', 'a']), llm_query('c'))\n```",
        "FINAL(ok)",
    ])
    .await;
    assert!(o.root.last_user(2).contains("['sub: b', 'sub: c', 'sub: a'] sub: c"), "{}", o.root.last_user(2));
    let mut asked = o.sub.prompts.lock().unwrap().clone();
    asked.sort();
    assert_eq!(asked, ["a", "b", "c"], "each prompt reached the model once");
    assert_eq!(o.result.sub_calls, 3, "answers given again cost no budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sub_call_budget_refuses_and_ends_the_run() {
    let budget = Budget { max_sub_calls: 2, ..Default::default() };
    let o = run_with(
        &[
            "```repl\nprint(llm_query('one'))\n```",
            "```repl\nrs = llm_query_batched(['a', 'b'])\n```",
            "FINAL(from what I have)",
        ],
        budget,
        Sub::new(),
    )
    .await;
    assert_eq!(o.result.stop_reason, StopReason::MaxSubCalls);
    assert_eq!(o.result.sub_calls, 1, "the batch that did not fit was refused whole");
    assert_eq!(o.sub.prompts.lock().unwrap().as_slice(), ["one"]);
    assert_eq!(o.result.answer.as_deref(), Some("from what I have"));
    let err = o.result.trajectory.iterations[1].code_blocks[0].result.error.clone().unwrap();
    assert!(err.contains("budget of 2 sub-calls is spent"), "{err}");
}

/// The wall clock holds inside a turn: sub-calls still running at the limit are cut off there and
/// later ones refused, so one slow batch cannot carry a run far past its time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_clock_cuts_off_sub_calls_in_flight() {
    let budget = Budget { wall_clock: Some(Duration::from_secs(4)), ..Default::default() };
    // A gate that never fills: without the cut-off each call would wait 10 s and answer
    // "not concurrent".
    let sub = Arc::new(Sub { prompts: Mutex::new(Vec::new()), gate: Some(Arc::new(tokio::sync::Barrier::new(100))) });
    let o = run_with(
        &[
            "```repl\nrs = llm_query_batched(['a', 'b'])\nprint(rs)\nprint(llm_query('c'))\n```",
            "FINAL(from what I have)",
        ],
        budget,
        sub,
    )
    .await;
    assert_eq!(o.result.stop_reason, StopReason::WallClock);
    let out = &o.result.trajectory.iterations[0].code_blocks[0].result;
    assert_eq!(out.stdout.matches("the run's time limit is reached").count(), 2, "{out:?}");
    assert!(out.error.as_deref().is_some_and(|e| e.contains("time limit is reached")), "{out:?}");
    assert_eq!(o.result.answer.as_deref(), Some("from what I have"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grep_read_and_files_serve_the_folder() {
    let o = run(&[
        "```repl\nprint(files())\nprint(len(grep(r'needle is \\d+')), len(grep('NEEDLE')), len(grep('NEEDLE', ignore_case=True)))\nprint(read('a.txt', 2, 2))\n```",
        "FINAL(done)",
    ])
    .await;
    let out = &o.result.trajectory.iterations[0].code_blocks[0].result;
    assert_eq!(out.error, None, "{out:?}");
    assert_eq!(out.stdout, "['a.txt', 'notes/b.md']\n1 0 1\nthe needle is 42\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trajectory_jsonl_records_every_iteration() {
    let o = run(&["```repl\nprint('hi')\n```", "FINAL(ok)"]).await;
    let mut out = Vec::new();
    o.result.trajectory.write_jsonl(&mut out).unwrap();
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["question"], "What is the needle?");
    assert_eq!(lines[1]["code_blocks"][0]["result"]["stdout"], "hi\n");
    assert_eq!(lines[2]["final_answer"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_question_is_refused() {
    let (_dir, folder) = folder();
    let rlm = Rlm::new(Scripted::new(&[]), Sub::new(), config(Budget::default()));
    let err = rlm.run(&folder, "  ", CancelToken::default(), |_| {}).await.unwrap_err();
    assert!(matches!(err, quarry_rlm::Error::EmptyQuestion));
}

/// Regression: the worker dies with the thread that spawned it (`PR_SET_PDEATHSIG`). When the
/// loop started it from a tokio blocking thread, that thread exited after 10 idle seconds while
/// the real 0.5B model was thinking, and the next execution failed with "Broken pipe" and a
/// restart that lost every variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_survives_a_root_model_thinking_longer_than_the_blocking_pool_keep_alive() {
    let root = Arc::new(Scripted {
        replies: Mutex::new(
            ["```repl\nx = 41\n```", "```repl\nprint(x + 1)\n```", "FINAL(done)"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        requests: Mutex::new(Vec::new()),
        pause: Some((1, Duration::from_secs(12))),
    });
    let (_dir, folder) = folder();
    let rlm = Rlm::new(root, Sub::new(), config(Budget::default()));
    let result = rlm.run(&folder, "q?", CancelToken::default(), |_| {}).await.unwrap();
    let second = &result.trajectory.iterations[1].code_blocks[0].result;
    assert!(!second.restarted, "{second:?}");
    assert_eq!(second.stdout, "42\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_that_does_not_compile_gets_one_repair_round() {
    let o = run(&["```repl\nprint('fixed' \n```", "```repl\nprint('fixed')\n```", "FINAL(done)"]).await;
    assert_eq!(o.result.answer.as_deref(), Some("done"));
    let t = &o.result.trajectory.iterations;
    let block = &t[0].code_blocks[0];
    assert_eq!(block.repaired_from.as_deref().map(str::trim_end), Some("print('fixed'"));
    assert_eq!(block.block.code.trim_end(), "print('fixed')");
    assert_eq!(block.result.stdout.trim(), "fixed");
    // The repair request holds only the code and its error, not the conversation.
    let repair = &o.root.requests()[1];
    assert_eq!(repair.messages.len(), 2);
    assert!(repair.messages[0].content.starts_with("You fix syntax errors"));
    assert!(repair.messages[1].content.contains("SyntaxError"), "{}", repair.messages[1].content);
    let fed_back = o.root.last_user(2);
    assert!(fed_back.contains("it was repaired and run as") && fed_back.contains("fixed"), "{fed_back}");
    assert_eq!(o.result.iterations, 2, "the repair is not a turn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_that_names_its_fix_gets_one_repair_round() {
    let o = run(&[
        "```repl\nprint([d.split('needle')[1] for d in context])\n```",
        "```repl\nprint([l.split('needle')[1] for d in context for l in d.lines() if 'needle' in l])\n```",
        "FINAL(42)",
    ])
    .await;
    let block = &o.result.trajectory.iterations[0].code_blocks[0];
    assert!(block.repaired_from.as_deref().is_some_and(|c| c.contains("d.split")), "{block:?}");
    assert_eq!(block.result.stdout.trim(), "[' is 42']");
    // The repair request has the traceback's last line: the hint, without the frames.
    let repair = &o.root.requests()[1];
    assert!(repair.messages[0].content.starts_with("You fix errors in Python code"));
    let asked = &repair.messages[1].content;
    assert!(
        asked.contains("fails with:\nAttributeError: a Document is a whole file") && !asked.contains("Traceback"),
        "{asked}"
    );
    assert!(o.root.last_user(2).contains("it was repaired and run as"));
    assert_eq!(o.result.iterations, 2, "the repair is not a turn");
    // strptime's error shows the data and the format that does not fit it.
    let o = run(&[
        "```repl\nimport datetime\nprint(datetime.datetime.strptime('Apr 07, 2024', '%Y-%m-%d').year)\n```",
        "```repl\nimport datetime\nprint(datetime.datetime.strptime('Apr 07, 2024', '%b %d, %Y').year)\n```",
        "FINAL(2024)",
    ])
    .await;
    assert_eq!(o.result.trajectory.iterations[0].code_blocks[0].result.stdout.trim(), "2024");
    // An error without such a hint is the model's to handle in its next turn, as before.
    let o = run_unchecked(&["```repl\n1 / 0\n```", "FINAL(none)"]).await;
    assert_eq!(o.root.requests().len(), 2, "no repair request");
    assert!(o.root.last_user(1).contains("ZeroDivisionError"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_repair_feeds_the_original_error_back() {
    let o = run(&["```repl\nprint('x' \n```", "I cannot fix it.", "FINAL(gave up)"]).await;
    let block = &o.result.trajectory.iterations[0].code_blocks[0];
    assert!(block.repaired_from.is_none());
    assert!(block.result.error.as_deref().unwrap().starts_with("SyntaxError"));
    assert!(o.root.last_user(2).contains("Error: SyntaxError"), "{}", o.root.last_user(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rlm_query_starts_a_child_run_and_the_depth_limit_makes_it_a_plain_call() {
    let o = run(&[
        // The parent hands a piece of text to a child run.
        "```repl\nr = rlm_query('What number is in it?', 'the child text says 7')\nprint('child said:', r)\n```",
        // The child's first turn: its context is that text, as a str; at depth 2 of 2 its own
        // rlm_query is a plain sub-model call.
        "```repl\nprint(type(context).__name__, context)\nprint(rlm_query('inner?', 'inner text'))\n```",
        "FINAL(seven)",
        // The parent again.
        "FINAL(the child found seven)",
    ])
    .await;
    assert_eq!(o.result.answer.as_deref(), Some("the child found seven"));
    let child_first = o.root.last_user(1);
    assert!(child_first.contains("one text (a Python str)"), "{child_first}");
    assert!(child_first.contains("Question: What number is in it?"), "{child_first}");
    let child_fed_back = o.root.last_user(2);
    assert!(child_fed_back.contains("str the child text says 7"), "{child_fed_back}");
    assert!(child_fed_back.contains("sub: inner text\n\ninner?"), "{child_fed_back}");
    assert!(o.root.last_user(3).contains("child said: seven"), "{}", o.root.last_user(3));
    assert_eq!(o.sub.prompts.lock().unwrap().clone(), ["inner text\n\ninner?"]);
    assert_eq!(o.result.sub_calls, 2, "the child run and its plain sub-call");
    // Parent turns 2 × 15, child turns 2 × 15, one sub-call 15.
    assert_eq!(o.result.usage.total(), 75);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_depth_one_rlm_query_is_a_plain_sub_call() {
    let root = Scripted::new(&["```repl\nprint(rlm_query('q?', 'ctx'))\n```", "FINAL(ok)"]);
    let sub = Sub::new();
    let (_dir, folder) = folder();
    let rlm = Rlm::new(root.clone(), sub.clone(), RlmConfig { max_depth: 1, ..config(Budget::default()) });
    let r = rlm.run(&folder, "Q?", CancelToken::default(), |_| {}).await.unwrap();
    assert_eq!(r.answer.as_deref(), Some("ok"));
    assert_eq!(sub.prompts.lock().unwrap().clone(), ["ctx\n\nq?"]);
    assert_eq!(root.requests().len(), 2, "no child run");
}

/// Four characters a token; a chat renders as its contents one after another.
struct CharTokens;

#[async_trait::async_trait]
impl quarry_llm::Tokens for CharTokens {
    async fn count_tokens(&self, text: &str) -> quarry_llm::Result<usize> {
        Ok(text.len().div_ceil(4))
    }

    async fn render_chat(&self, messages: &[quarry_llm::ChatMessage]) -> quarry_llm::Result<String> {
        Ok(messages.iter().map(|m| format!("<{}>{}", m.role, m.content)).collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_baselines_answer_in_one_pass_and_their_citations_are_verified() {
    use quarry_rlm::{Analyst, AnalystConfig, Check, Mode};
    let (_dir, folder) = folder();
    for (mode, reply, shows) in [
        (Mode::Rag, "The needle is 42 (a.txt:2).", "<passage path=\"a.txt\" lines=\"1-3\">"),
        (Mode::Direct, "The needle is 41 (a.txt:2).", "<document path=\"a.txt\">"),
    ] {
        let root = Scripted::new(&[reply]);
        let analyst = Analyst::new(root.clone(), Sub::new(), Arc::new(CharTokens), AnalystConfig::default());
        let mut deltas = String::new();
        let a = analyst
            .answer(&folder, "What is the needle?", mode, CancelToken::default(), |e| {
                if let Event::ModelDelta { text } = e {
                    deltas.push_str(text)
                }
            })
            .await
            .unwrap();
        assert_eq!(a.answer.as_deref(), Some(reply));
        assert_eq!(deltas, reply, "the answer streams");
        assert_eq!((a.iterations, a.sub_calls, a.stop_reason), (1, 0, StopReason::Final));
        let prompt = &root.requests()[0].messages[1].content;
        assert!(prompt.contains(shows), "{prompt}");
        assert_eq!(a.citations.len(), 1);
        let c = &a.citations[0];
        assert_eq!((c.path.as_str(), c.line_start, c.line_end, c.check), ("a.txt", 2, 2, Check::Numbers));
        // The direct reply misquotes the number, so its citation fails.
        assert_eq!(c.verified, mode == Mode::Rag, "{c:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_file_citation_is_narrowed_to_what_the_run_found_there() {
    use quarry_rlm::{Analyst, AnalystConfig, Check, Mode};
    let (_dir, folder) = folder();
    let root = Scripted::new(&[
        "```repl\nh = search('needle', k=1)[0]\nprint(h['path'], h['line'], h['line_end'])\nprint(grep('needle')[0]['line'])\n```",
        "FINAL(The needle is 42 (a.txt).)",
    ]);
    let analyst = Analyst::new(
        root.clone(),
        Sub::new(),
        Arc::new(CharTokens),
        AnalystConfig { rlm: config(Budget::default()), ..AnalystConfig::default() },
    );
    let a = analyst.answer(&folder, "What is the needle?", Mode::Rlm, CancelToken::default(), |_| {}).await.unwrap();
    assert!(
        root.last_user(1).contains("a.txt 1 3\n2"),
        "search gives the passage, grep the line: {}",
        root.last_user(1)
    );
    assert_eq!(a.citations.len(), 1);
    let c = &a.citations[0];
    // The search passage (lines 1-3) came first and holds 42 too: narrowing takes the first
    // range the run looked at where the claim checks out.
    assert_eq!((c.path.as_str(), c.line_start, c.line_end, c.verified, c.check), ("a.txt", 1, 3, true, Check::Numbers));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeating_the_last_code_asks_for_an_answer_instead_of_running_it_again() {
    let grep = "```repl\nprint(grep('needle')[0]['text'])\n```";
    let o = run(&[grep, grep, "FINAL(42)"]).await;
    assert_eq!(o.result.answer.as_deref(), Some("42"));
    assert_eq!(o.result.stop_reason, StopReason::Final);
    let t = &o.result.trajectory.iterations;
    assert_eq!(t.len(), 2);
    assert!(t[1].code_blocks.is_empty(), "the repeat did not run");
    let probe = &o.root.requests()[2];
    assert!(probe.messages.last().unwrap().content.starts_with("You wrote the same code as last time"));
    assert_eq!(probe.stop, ["```"], "no code in the answer to the probe");

    // NOT FOUND: the run goes on and is told to try something else.
    let o = run(&[grep, grep, "NOT FOUND", "```repl\nprint(read('a.txt', 2, 2))\n```", "FINAL(42 again)"]).await;
    assert_eq!(o.result.answer.as_deref(), Some("42 again"));
    assert!(o.root.last_user(3).contains("Write different code"), "{}", o.root.last_user(3));
    assert!(
        o.root.requests()[3].messages.iter().all(|m| !m.content.contains("NOT FOUND")),
        "a \"no\" to the probe is not left for the model to copy"
    );
    let temperatures: Vec<f32> = o.root.requests().iter().map(|r| r.sampling.temperature).collect();
    assert_eq!(temperatures, [0.0, 0.0, 0.0, 0.7, 0.0], "one sampled turn after the repeat, then greedy again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_result_says_nothing_matched() {
    let o = run(&[
        "```repl
hits = grep('zebra')
for h in hits:
    print(h)
```",
        "FINAL(none)",
    ])
    .await;
    let fed_back = o.root.last_user(1);
    assert!(fed_back.contains("`hits` is empty: nothing matched"), "{fed_back}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtering_on_words_no_document_holds_is_pointed_out() {
    let o = run(&[
        "```repl\nrecords = [l for d in context for l in d.lines() if 'Text:' in l]\nprint(len(records), records[:2])\n```",
        "FINAL(none)",
    ])
    .await;
    let fed_back = o.root.last_user(1);
    assert!(fed_back.contains("0 []"), "{fed_back}");
    assert!(fed_back.contains("`records` is empty, and \"Text:\" occurs in none of the documents"), "{fed_back}");
}

/// Labels numbered items "positive" when they say "good", skipping item 2 of every batch of more
/// than two so the retry is exercised. Records the grammar of every request.
#[derive(Default)]
struct Labeller {
    grammars: Mutex<Vec<Option<String>>>,
}

#[async_trait::async_trait]
impl LanguageModel for Labeller {
    fn name(&self) -> &str {
        "labeller"
    }

    async fn chat_stream(&self, request: &ChatRequest, _: &mut dyn DeltaSink) -> quarry_llm::Result<Completion> {
        let prompt = request.messages.last().unwrap().content.clone();
        self.grammars.lock().unwrap().push(request.constraint.grammar.clone());
        let label = |t: &str| if t.contains("good") { "Positive" } else { "negative." };
        // The items sit between "Items:" and the rule after them.
        let items = prompt.split("Items:\n").nth(1).unwrap().split("\n\n").next().unwrap();
        let numbered: Vec<(&str, &str)> =
            items.lines().filter_map(|l| l.split_once(". ").filter(|(n, _)| n.parse::<usize>().is_ok())).collect();
        let skip_second = numbered.len() > 2;
        let text = numbered
            .iter()
            .filter(|(n, _)| !(skip_second && *n == "2"))
            .map(|(n, t)| format!("{n}. {}", label(t)))
            .collect::<Vec<_>>()
            .join("\n");
        Ok(completion(text))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_classify_labels_every_item_in_batches_and_retries_what_was_skipped() {
    let root = Scripted::new(&[
        "```repl\nitems = ['good day', 'bad day', 'good food', 'cold tea', 'good news']\nlabels = llm_classify(items, ['positive', 'negative'], batch=3)\nprint(labels)\n```",
        "FINAL(done)",
    ]);
    let (_dir, folder) = folder();
    let sub = Arc::new(Labeller::default());
    let rlm = Rlm::new(root.clone(), sub.clone(), config(Budget::default()));
    let r = rlm.run(&folder, "Q?", CancelToken::default(), |_| {}).await.unwrap();
    let fed_back = root.last_user(1);
    assert!(fed_back.contains("['positive', 'negative', 'positive', 'negative', 'positive']"), "{fed_back}");
    // Two batch prompts (3 + 2 items: item 2 skipped), then item 2 asked again.
    assert_eq!(r.sub_calls, 3);
    // Each prompt's reply is held to one numbered allowed label per item of that prompt.
    let mut grammars: Vec<String> = sub.grammars.lock().unwrap().iter().map(|g| g.clone().unwrap()).collect();
    grammars.sort_by_key(|g| std::cmp::Reverse(g.len()));
    let label = "label ::= \"positive\" | \"negative\"\n";
    assert_eq!(
        grammars[0],
        format!("root ::= \"1. \" label \"\\n\" \"2. \" label \"\\n\" \"3. \" label \"\\n\"\n{label}")
    );
    assert_eq!(grammars[1], format!("root ::= \"1. \" label \"\\n\" \"2. \" label \"\\n\"\n{label}"));
    assert_eq!(grammars[2], format!("root ::= \"1. \" label \"\\n\"\n{label}"));

    // A sub endpoint that takes no grammars (a hosted API) gets none; the replies are parsed as
    // written.
    let root = Scripted::new(&[
        "```repl\nprint(llm_classify(['good day', 'bad day'], ['positive', 'negative']))\n```",
        "FINAL(done)",
    ]);
    let sub = Arc::new(Labeller::default());
    let rlm =
        Rlm::new(root.clone(), sub.clone(), RlmConfig { sub_accepts_grammar: false, ..config(Budget::default()) });
    rlm.run(&folder, "Q?", CancelToken::default(), |_| {}).await.unwrap();
    assert!(root.last_user(1).contains("['positive', 'negative']"), "{}", root.last_user(1));
    assert_eq!(*sub.grammars.lock().unwrap(), vec![None]);
}

/// A sub model that scores: "positive" is likely for texts with "good" in them, and, like a
/// small model, it leans to "negative" whatever the text (content-free inputs included), which
/// calibration must divide out. Generating is a failure: the likelihood path never generates.
#[derive(Default)]
struct Scorer {
    prompts: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl LanguageModel for Scorer {
    fn name(&self) -> &str {
        "scorer"
    }

    async fn chat_stream(&self, _: &ChatRequest, _: &mut dyn DeltaSink) -> quarry_llm::Result<Completion> {
        Err(quarry_llm::Error::Generation("the scorer was asked to generate".into()))
    }

    async fn score(&self, request: &quarry_llm::ScoreRequest) -> quarry_llm::Result<quarry_llm::Scores> {
        let prompt = request.messages.last().unwrap().content.clone();
        self.prompts.lock().unwrap().push(prompt.clone());
        let text = prompt.rsplit("Text: ").next().unwrap();
        let positive = if text.contains("good") {
            0.45
        } else if ["N/A", "", "[MASK]"].contains(&text) {
            0.05
        } else {
            0.01
        };
        let candidates = request
            .candidates
            .iter()
            .map(|c| {
                let p: f64 = if c == "positive" { positive } else { 1.0 - positive };
                quarry_llm::CandidateScore { logprob: p.ln(), first_logprob: p.ln(), tokens: 1 }
            })
            .collect();
        Ok(quarry_llm::Scores {
            candidates,
            usage: Usage::default(),
            timings: Timings::default(),
            model: "scorer".into(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_classify_scores_labels_by_likelihood_calibrated_where_the_sub_model_scores() {
    let items: Vec<String> =
        (0..25).map(|i| if i % 2 == 0 { format!("good day {i}") } else { format!("cold tea {i}") }).collect();
    let code = format!(
        "```repl\nlabels = llm_classify({items:?}, ['positive', 'negative'])\nprint(labels.count('positive'), labels[:3])\nagain = llm_classify({items:?}, ['positive', 'negative'])\nprint(again == labels)\n```"
    );
    let root = Scripted::new(&[&code, "FINAL(done)"]);
    let (_dir, folder) = folder();
    let sub = Arc::new(Scorer::default());
    let r = Rlm::new(root.clone(), sub.clone(), config(Budget::default()))
        .run(&folder, "Q?", CancelToken::default(), |_| {})
        .await
        .unwrap();
    let fed_back = root.last_user(1);
    // Raw, "negative" wins every item (0.55 > 0.45); divided by the content-free prior (0.05 :
    // 0.95), the "good" items are positive.
    assert!(fed_back.contains("13 ['positive', 'negative', 'positive']"), "{fed_back}");
    assert!(fed_back.contains("True"), "{fed_back}");
    let prompts = sub.prompts.lock().unwrap().clone();
    // One prompt per item plus three content-free ones, once: the second call reuses the scores.
    assert_eq!(prompts.len(), 28, "{prompts:?}");
    assert!(prompts.iter().any(|p| p.ends_with("Text: N/A")), "{prompts:?}");
    // Every prompt starts with the same instruction and labels, the item last (the engine's
    // prompt cache shares that prefix).
    assert!(prompts.iter().all(|p| p.starts_with("Labels: positive; negative.")), "{prompts:?}");
    assert_eq!(r.sub_calls, 3, "28 scored prompts count as three sub-calls");
}

/// A root model that also scores (Quarry's engine serves both), taking `delay` per call.
struct ScoringRoot {
    script: Arc<Scripted>,
    scorer: Scorer,
    delay: Duration,
}

#[async_trait::async_trait]
impl LanguageModel for ScoringRoot {
    fn name(&self) -> &str {
        "root"
    }

    async fn chat_stream(&self, request: &ChatRequest, sink: &mut dyn DeltaSink) -> quarry_llm::Result<Completion> {
        self.script.chat_stream(request, sink).await
    }

    async fn score(&self, request: &quarry_llm::ScoreRequest) -> quarry_llm::Result<quarry_llm::Scores> {
        tokio::time::sleep(self.delay).await;
        self.scorer.score(request).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_labels_unless_its_measured_speed_would_overrun_the_run() {
    let code = "```repl\nlabels = llm_classify(['good %d' % i if i % 2 else 'cold %d' % i for i in range(25)], ['positive', 'negative'])\nprint(labels.count('positive'))\n```";
    for (delay, root_labels) in [(Duration::ZERO, true), (Duration::from_secs(1), false)] {
        let script = Scripted::new(&[code, "FINAL(done)"]);
        let root = Arc::new(ScoringRoot { script: script.clone(), scorer: Scorer::default(), delay });
        let sub = Arc::new(Scorer::default());
        let budget = Budget { wall_clock: Some(Duration::from_secs(4)), ..Budget::default() };
        let (_dir, folder) = folder();
        let mut events = Vec::new();
        Rlm::new(root.clone(), sub.clone(), config(budget))
            .run(&folder, "Q?", CancelToken::default(), |e| events.push(e.clone()))
            .await
            .unwrap();
        assert!(script.last_user(1).contains("12\n"), "{}", script.last_user(1));
        let (by_root, by_sub) = (root.scorer.prompts.lock().unwrap().len(), sub.prompts.lock().unwrap().len());
        let said = events
            .iter()
            .find_map(|e| match e {
                Event::SubCallFinished { response_preview, .. } => Some(response_preview.clone()),
                _ => None,
            })
            .unwrap();
        if root_labels {
            assert_eq!((by_root, by_sub), (28, 0));
            assert_eq!(said, "28 prompts scored by root");
        } else {
            // Eight prompts took a second: the other twenty would take 2.5 s of the 4 left, so
            // the sub model scores all 28 (one labelling, one model's calibration).
            assert_eq!((by_root, by_sub), (8, 28));
            assert_eq!(said, "28 prompts scored by scorer");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_beside_the_repeated_code_is_taken_since_its_output_was_seen() {
    let grep = "```repl\nprint(grep('needle')[0]['text'])\n```";
    let o = run(&[grep, &format!("FINAL(42)\n{grep}")]).await;
    assert_eq!(o.result.answer.as_deref(), Some("42"));
    assert_eq!(o.result.stop_reason, StopReason::Final);
    assert_eq!(o.root.requests().len(), 2, "no probe needed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reply_without_code_the_next_turn_may_only_be_code() {
    let o = run(&["REPL variables: none\nQuestion: echoed back", "```repl\nprint(1)\n```", "FINAL(1)"]).await;
    assert_eq!(o.result.answer.as_deref(), Some("1"));
    let grammars: Vec<Option<String>> = o.root.requests().iter().map(|r| r.constraint.grammar.clone()).collect();
    assert!(grammars[0].is_none() && grammars[2].is_none(), "{grammars:?}");
    assert!(grammars[1].as_deref().is_some_and(|g| g.contains("```repl") && !g.contains("FINAL")), "{grammars:?}");

    // An endpoint that takes no grammars gets none.
    let root = Scripted::new(&["no code", "FINAL(1)"]);
    let (_dir, folder) = folder();
    let rlm = Rlm::new(root.clone(), Sub::new(), RlmConfig { accepts_grammar: false, ..config(Budget::default()) });
    rlm.run(&folder, "Q?", CancelToken::default(), |_| {}).await.unwrap();
    assert!(root.requests().iter().all(|r| r.constraint.grammar.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_classify_does_not_spend_the_budget_retrying_a_sub_model_that_ignores_the_format() {
    // The echoing sub model repeats the prompt, which names no allowed label on a numbered line:
    // all 30 items stay unlabelled, too many to ask again.
    let o = run(&[
        "```repl\nlabels = llm_classify(['w%d' % i for i in range(30)], ['alpha', 'beta'], batch=10)\nprint(labels.count(None))\n```",
        "FINAL(done)",
    ])
    .await;
    assert!(o.root.last_user(1).contains("Output of code block 1:\n30\n"), "{}", o.root.last_user(1));
    assert_eq!(o.result.sub_calls, 3, "three batches, no retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_line_written_as_a_code_block_is_the_answer() {
    let o =
        run(&["```repl\nprint(grep('needle')[0]['text'])\n```", "```repl\nFINAL(The needle is 42 (a.txt:2).)\n```"])
            .await;
    assert_eq!(o.result.answer.as_deref(), Some("The needle is 42 (a.txt:2)."));
    assert_eq!(o.result.stop_reason, StopReason::Final);
    assert_eq!(o.root.requests().len(), 2, "no repair round for it");

    // With a comment above it (the 1.5B model's habit), it is still the answer.
    let o = run(&[
        "```repl\nprint(grep('needle')[0]['text'])\n```",
        "```repl\n# The output above answers the question\nFINAL(Answer: 8cfcf632-47da)\n```",
    ])
    .await;
    assert_eq!(o.result.answer.as_deref(), Some("Answer: 8cfcf632-47da"));
    assert_eq!(o.root.requests().len(), 2, "no repair round for it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_loops_is_cut_and_the_code_before_the_loop_runs() {
    let looping = format!(
        "```repl\nhits = grep('needle')\nprint(hits[0]['text'])\n{}",
        "# Now read the document that contains the needle and look at it\n".repeat(12)
    );
    let o = run(&[&looping, "FINAL(42)"]).await;
    assert_eq!(o.result.answer.as_deref(), Some("42"));
    let first = &o.result.trajectory.iterations[0];
    assert_eq!(first.code_blocks.len(), 1, "{first:?}");
    assert_eq!(first.code_blocks[0].block.code, "hits = grep('needle')\nprint(hits[0]['text'])\n");
    assert_eq!(first.response.matches("# Now read").count(), 0, "the loop is not kept: {}", first.response);
    let fed_back = o.root.last_user(1);
    assert!(fed_back.contains("cut off") && fed_back.contains("the needle is 42"), "{fed_back}");
    assert!(o.events.iter().any(|e| matches!(e, Event::Notice { message } if message.contains("repeated itself"))));
    assert_eq!(o.result.stop_reason, StopReason::Final);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_of_comments_runs_nothing_and_the_next_turn_is_sampled_code() {
    let looping = format!("```repl\n{}", "# First we search the documents for the magic number\n".repeat(8));
    let o = run(&[&looping, "```repl\nprint(grep('needle')[0]['text'])\n```", "FINAL(42)"]).await;
    assert_eq!(o.result.answer.as_deref(), Some("42"));
    let first = &o.result.trajectory.iterations[0];
    assert!(first.code_blocks.is_empty());
    assert_eq!(first.response.matches("# First we search").count(), 1, "{}", first.response);
    assert!(o.root.last_user(1).contains("before any code"), "{}", o.root.last_user(1));
    let second = &o.root.requests()[1];
    assert_eq!(second.sampling.temperature, 0.7, "greedy decoding would write the same loop");
    assert!(second.constraint.grammar.as_deref().is_some_and(|g| g.contains("```repl")));
    assert_eq!(o.root.requests()[2].sampling.temperature, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_of_only_comments_is_not_code() {
    let o = run(&["```repl\n# grep for the needle, then read it\n```", "```repl\nprint(1)\n```", "FINAL(1)"]).await;
    assert!(o.result.trajectory.iterations[0].code_blocks.is_empty());
    assert!(o.root.last_user(1).contains("only comments"), "{}", o.root.last_user(1));
    assert!(o.root.requests()[1].constraint.grammar.is_some(), "the next turn may only be code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_code_is_compared_with_the_last_code_that_ran_not_a_skipped_turn() {
    let failing = "```repl\nn = int(grep('needle')[0]['text'].split(' ')[1])\n```";
    let budget = Budget { max_consecutive_errors: 5, ..Budget::default() };
    let working = "```repl\nprint(grep('needle')[0]['text'])\n```";
    let o = run_with(&[failing, failing, failing, working, "FINAL(42)"], budget, Sub::new()).await;
    assert_eq!(o.result.answer.as_deref(), Some("42"));
    let ran: Vec<usize> = o.result.trajectory.iterations.iter().map(|t| t.code_blocks.len()).collect();
    assert_eq!(ran, [1, 0, 0, 1, 0], "neither repeat ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_that_failed_is_not_run_again_and_the_next_turn_is_sampled() {
    let failing = "```repl\nn = int(grep('needle')[0]['text'].split(' ')[1])\n```";
    let o = run(&[failing, failing, "```repl\nprint(grep('needle')[0]['text'])\n```", "FINAL(42)"]).await;
    assert_eq!(o.result.answer.as_deref(), Some("42"));
    let t = &o.result.trajectory.iterations;
    assert_eq!(t[0].code_blocks.len(), 1);
    assert!(t[1].code_blocks.is_empty(), "the repeat did not run");
    let told = o.root.last_user(2);
    assert!(told.contains("failed last time") && told.contains("ValueError"), "{told}");
    let temperatures: Vec<f32> = o.root.requests().iter().map(|r| r.sampling.temperature).collect();
    assert_eq!(temperatures, [0.0, 0.0, 0.7, 0.0]);
    assert!(o
        .events
        .iter()
        .any(|e| matches!(e, Event::Notice { message } if message.contains("repeated code that failed"))));
}

/// `auto` answers in one pass when the whole folder fits the window, and hands a folder larger
/// than the window to the loop, saying which it chose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_answers_in_one_pass_when_the_folder_fits_and_runs_the_loop_when_not() {
    use quarry_rlm::{Analyst, AnalystConfig, Mode};
    let (_dir, folder) = folder();
    let fits = Scripted::new(&["The needle is 42 (a.txt:2)."]);
    let analyst = Analyst::new(fits.clone(), Sub::new(), Arc::new(CharTokens), AnalystConfig::default());
    let mut notices = Vec::new();
    let a = analyst
        .answer(&folder, "What is the needle?", Mode::Auto, CancelToken::default(), |e| {
            if let Event::Notice { message } = e {
                notices.push(message.clone())
            }
        })
        .await
        .unwrap();
    assert_eq!(a.mode, Mode::Direct);
    assert!(fits.requests()[0].messages[1].content.contains("<document path=\"a.txt\">"));
    assert!(notices.iter().any(|n| n.contains("answered in one pass")), "{notices:?}");

    // A window smaller than the folder: the loop reads it.
    let small = Scripted::new(&["```repl\nprint(grep('needle')[0]['text'])\n```", "FINAL(42)"]);
    let config =
        AnalystConfig { window: 60, answer_tokens: 8, rlm: config(Budget::default()), ..AnalystConfig::default() };
    let analyst = Analyst::new(small.clone(), Sub::new(), Arc::new(CharTokens), config);
    let mut notices = Vec::new();
    let a = analyst
        .answer(&folder, "What is the needle?", Mode::Auto, CancelToken::default(), |e| {
            if let Event::Notice { message } = e {
                notices.push(message.clone())
            }
        })
        .await
        .unwrap();
    assert_eq!(a.mode, Mode::Rlm);
    assert_eq!(a.answer.as_deref(), Some("42"));
    assert!(notices.iter().any(|n| n.contains("the RLM loop reads it")), "{notices:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phrase_grep_that_finds_nothing_is_told_which_of_its_words_occur() {
    let o =
        run(&["```repl\nhits = grep('needle value in omega', ignore_case=True)\nprint(len(hits))\n```", "FINAL(42)"])
            .await;
    let fed_back = o.root.last_user(1);
    assert!(
        fed_back.contains(
            "grep(\"needle value in omega\") matched no line, but its words occur on their own: \"needle\" (1 line), \"omega\" (1 line)."
        ),
        "{fed_back}"
    );
    // A grep that matches says nothing of the kind.
    let o = run(&["```repl\nprint(len(grep('needle is')))\n```", "FINAL(42)"]).await;
    assert!(!o.root.last_user(1).contains("matched no line"), "{}", o.root.last_user(1));
}

/// A folder whose `contract.pdf` has two pages, labelled "i" and "1", as extraction lays it out.
fn paged_folder() -> Folder {
    use quarry_index::{Document, Kind, Layout, PageSpan};
    let span = |number, label: &str, first_line| PageSpan {
        number,
        label: label.into(),
        first_line,
        line_count: 2,
        ocr: false,
        note: None,
    };
    let layout = Layout {
        format: Kind::Pdf,
        extractor: "test".into(),
        pages: vec![span(1, "i", 1), span(2, "1", 3)],
        warnings: Vec::new(),
    };
    let text = "Consulting Agreement\nContents\nThe fee is 5,000 a month.\nNew York law governs.\n";
    Folder::from_parts(
        "/data",
        vec![
            (Document { path: "contract.pdf".into(), text: text.into() }, layout),
            (Document { path: "memo.txt".into(), text: "call Ann\n".into() }, Layout::text(1)),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grep_hits_name_their_page_read_takes_a_page_and_the_answer_cites_it() {
    let root = Scripted::new(&[
        "```repl\nh = grep('governs')[0]\nprint(h['path'], h['line'], h['page'], h['page_label'], h['page_line'])\nprint(repr(read('contract.pdf', page='1')))\nprint(repr(read('contract.pdf', page=1, start=2)))\nprint(repr(context[0]), context[0].pages[1], [c.page for c in chunks(context[0], max_chars=30)], chunks(context[1])[0].page)\nprint(read('contract.pdf', page=7))\n```",
        "FINAL(New York law governs (contract.pdf:4).)",
    ]);
    let rlm = Rlm::new(root.clone(), Sub::new(), config(Budget::default()));
    let folder = paged_folder();
    let result = rlm.run(&folder, "Which law governs?", CancelToken::default(), |_| {}).await.unwrap();
    let first = root.last_user(0);
    assert!(first.contains("contract.pdf (78; 2 pages)") && first.contains("read(path, page=N)"), "{first}");
    let fed_back = root.last_user(1);
    assert!(fed_back.contains("contract.pdf 4 2 1 2"), "{fed_back}");
    // page="1" is the page labelled 1 (physical page 2); page=1 is physical page 1.
    assert!(fed_back.contains("'The fee is 5,000 a month.\\nNew York law governs.'"), "{fed_back}");
    assert!(fed_back.contains("'Contents'"), "{fed_back}");
    // The documents know their pages, and each chunk the page it starts on.
    assert!(
        fed_back.contains(
            "Document(path='contract.pdf', bytes=78, pages=2) {'number': 2, 'label': '1', 'first_line': 3} ['i', '1', '1'] None"
        ),
        "{fed_back}"
    );
    assert!(
        fed_back.contains("contract.pdf has no page 7: its 2 pages are numbered 1 to 2 (labels i, 1)"),
        "{fed_back}"
    );
    let answer = quarry_rlm::cite(result.answer.as_deref().unwrap(), &folder);
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].location, "contract.pdf p. 1, line 2");
    // The page and line exist; the answer names no number or quote to find there, so the
    // citation is unchecked, not verified.
    assert_eq!((answer[0].page, answer[0].status), (Some(2), quarry_rlm::CitationStatus::Unchecked));
}

/// A run with the evidence check off, for scripts about something else that answer without
/// having run code.
async fn run_unchecked(replies: &[&str]) -> Outcome {
    run_asking("What is the needle?", replies, false).await
}

async fn run_asking(question: &str, replies: &[&str], check_final: bool) -> Outcome {
    let root = Scripted::new(replies);
    let sub = Sub::new();
    let (_dir, folder) = folder();
    let rlm = Rlm::new(root.clone(), sub.clone(), RlmConfig { check_final, ..config(Budget::default()) });
    let mut events = Vec::new();
    let result = rlm
        .run(&folder, question, CancelToken::default(), |e| events.push(e.clone()))
        .await
        .expect("the run completes");
    Outcome { result, events, root, sub }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_before_any_code_ran_is_sent_back_with_the_reason_and_the_run_goes_on() {
    let o = run_asking(
        "What is the needle?",
        &["FINAL(7)", "```repl\nprint(grep('needle')[0]['text'])\n```", "FINAL(42)"],
        true,
    )
    .await;
    assert_eq!(o.result.answer.as_deref(), Some("42"));
    assert_eq!(o.result.iterations, 3);
    let t = &o.result.trajectory.iterations;
    assert_eq!((t[0].final_answer.as_deref(), t[0].premature.as_deref()), (None, Some("no code ran")));
    assert_eq!((t[2].final_answer.as_deref(), t[2].premature.as_deref()), (Some("42"), None));
    let told = o.root.last_user(1);
    assert!(told.contains("Your FINAL did not count: no code has run yet"), "{told}");
    assert!(o.events.iter().any(|e| matches!(e, Event::Notice { message } if message.contains("before its evidence"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_of_items_the_question_says_are_unlabelled_waits_until_something_judged_them() {
    let question = "Each line is a question. No file stores a label: decide which of these each is: entity, place. How many are 'place'?";
    let o = run_asking(
        question,
        &[
            "```repl\nrows = grep('.')\nprint(len(rows))\n```",
            "FINAL(There are 5 'place' lines.)",
            "```repl\nprint(llm_query('Is this a place? ' + rows[0]['text']))\n```",
            "FINAL(2)",
        ],
        true,
    )
    .await;
    assert_eq!(o.result.answer.as_deref(), Some("2"));
    assert_eq!(o.result.iterations, 4);
    let t = &o.result.trajectory.iterations;
    assert_eq!(t[1].premature.as_deref(), Some("nothing judged"));
    assert!(o.root.last_user(2).contains("call count_labels(labels)"), "{}", o.root.last_user(2));
    // The first turn and the one after the send-back are held to a block that starts by
    // judging (the question says its items must be judged); the others are free.
    let grammars: Vec<Option<String>> = o.root.requests().iter().map(|r| r.constraint.grammar.clone()).collect();
    let judge = Some(quarry_rlm::JUDGE_GRAMMAR.to_string());
    assert_eq!(grammars, [judge.clone(), None, judge, None]);
    assert_eq!(o.sub.prompts.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_premature_reason_is_sent_back_once_and_with_the_check_off_only_recorded() {
    let o = run_asking("What is the needle?", &["FINAL(7)", "FINAL(8)"], true).await;
    assert_eq!(o.result.answer.as_deref(), Some("8"), "a second code-less answer is taken");
    let t = &o.result.trajectory.iterations;
    assert_eq!(t.iter().map(|i| i.premature.as_deref()).collect::<Vec<_>>(), [Some("no code ran"); 2]);

    let o = run_asking("What is the needle?", &["FINAL(7)"], false).await;
    assert_eq!((o.result.answer.as_deref(), o.result.iterations), (Some("7"), 1));
    assert_eq!(o.result.trajectory.iterations[0].premature.as_deref(), Some("no code ran"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_line_is_cut_to_the_value_asked_for_and_keeps_its_reference() {
    let line = "Security notice 14 (rev. 3): following the audit of March, the door controller of the east vault was re-keyed, and the passcode for the east vault is now 7391-ALPHA; staff must not write it down or share it.";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("memo.txt"), format!("Memo\n{line}\n")).unwrap();
    let folder = Folder::load(dir.path()).unwrap();
    let ask = |cut_reply: &'static str| {
        let root = Scripted::new(&[
            "```repl\nprint(grep('passcode')[0]['text'])\n```",
            &format!("FINAL({line} (memo.txt:2))"),
            cut_reply,
        ]);
        let rlm = Rlm::new(root.clone(), Sub::new(), config(Budget::default()));
        let folder = folder.clone();
        async move {
            let r = rlm.run(&folder, "What is the passcode for the east vault?", CancelToken::default(), |_| {}).await;
            (r.unwrap(), root)
        }
    };
    let (result, root) = ask("7391-ALPHA").await;
    assert_eq!(result.answer.as_deref(), Some("7391-ALPHA (memo.txt:2)"));
    assert!(root.last_user(2).contains("Reply with only the value"), "{}", root.last_user(2));
    assert!(result.trajectory.iterations[1].final_answer.as_deref().unwrap().starts_with("Security notice"));
    // A reply that is not part of the line is not taken: a cut drops words, it never adds one.
    let (result, _) = ask("8000-BETA").await;
    assert!(result.answer.as_deref().unwrap().starts_with("Security notice 14"), "{:?}", result.answer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_must_be_judged_start_with_a_labelling_call_unless_judge_first_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..6).map(|i| format!("Date: Jan 0{i}, 2023 || User: {i} || Text: review {i}\n")).collect();
    std::fs::write(dir.path().join("reviews.txt"), lines).unwrap();
    let folder = Folder::load(dir.path()).unwrap();
    let question = "The reviews are not labelled; label each as good or bad. How many are bad?";
    let ask = |judge_first: bool| {
        let root = Scripted::new(&["```repl\nprint(count_labels(['good', 'bad']))\n```", "FINAL(3)"]);
        let rlm = Rlm::new(root.clone(), Sub::new(), RlmConfig { judge_first, ..config(Budget::default()) });
        let folder = &folder;
        async move {
            rlm.run(folder, question, CancelToken::default(), |_| {}).await.expect("the run completes");
            root
        }
    };
    let root = ask(true).await;
    let first = &root.requests()[0];
    // The question lists its labels ("as good or bad"), so the grammar writes them in.
    let listed = quarry_rlm::judge_records_grammar(&["good".into(), "bad".into()]);
    assert_eq!(first.constraint.grammar.as_deref(), Some(listed.as_str()));
    assert!(listed.contains(r#""count_labels(" | "label_records(") "[\"good\", \"bad\"]""#), "{listed}");
    assert!(root.last_user(0).contains("labels every record with count_labels(labels)"), "{}", root.last_user(0));
    assert_eq!(root.requests()[1].constraint.grammar, None);

    let root = ask(false).await;
    assert_eq!(root.requests()[0].constraint.grammar, None);
    assert!(root.last_user(0).contains("loads the records with records()"), "{}", root.last_user(0));
}

/// The loop's own event stream, through the `Recorder` `quarry ask` and the window share: the
/// history holds every event as sent (the deltas joined to the same text), the answer and its
/// checked citations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_run_holds_the_loop_s_events_answer_and_citations() {
    use quarry_index::history::{History, NewRun, RunStatus};
    use quarry_rlm::{Analyst, AnalystConfig, Mode, Recorder};

    let root = Scripted::new(&[
        "Let me search.\n```repl\nhits = grep('needle')\nprint(hits[0]['path'], hits[0]['text'])\n```",
        "The needle is 42 (a.txt:2).\nFINAL(The needle is 42 (a.txt:2).)",
    ]);
    let (dir, folder) = folder();
    let data = tempfile::tempdir().unwrap();
    let analyst = Analyst::new(
        root,
        Sub::new(),
        Arc::new(quarry_llm::Estimate),
        AnalystConfig { rlm: config(Budget::default()), ..AnalystConfig::default() },
    );
    let question = "What is the needle?";
    let mut recorder =
        Recorder::start(History::open_in(data.path()).unwrap(), &NewRun::new(question, "rlm", dir.path())).unwrap();
    let mut events = Vec::new();
    let answer = analyst
        .answer(&folder, question, Mode::Rlm, CancelToken::default(), |e| {
            recorder.record(e);
            events.push(e.clone());
        })
        .await;
    let id = recorder.finish(answer.as_ref().map_err(|e| e.to_string())).unwrap();
    let answer = answer.unwrap();

    let run = History::open_in(data.path()).unwrap().get(id).unwrap();
    assert_eq!(run.status, RunStatus::Done);
    assert_eq!(run.answer, answer.answer);
    assert_eq!(run.citations, serde_json::to_value(&answer.citations).unwrap());
    assert_eq!(run.citations[0]["location"], "a.txt:2", "{}", run.citations);
    assert_eq!(run.stats["iterations"], 2);
    let stored: Vec<Event> = run.events.iter().map(|e| serde_json::from_value(e.clone()).unwrap()).collect();
    let steps = |es: &[Event]| -> Vec<Event> {
        es.iter().filter(|e| !matches!(e, Event::ModelDelta { .. })).cloned().collect()
    };
    assert_eq!(steps(&stored), steps(&events));
    let text = |es: &[Event]| -> String {
        es.iter()
            .filter_map(|e| match e {
                Event::ModelDelta { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(text(&stored), text(&events));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_message_written_back_runs_the_repair_of_the_code_that_failed_once() {
    let o = run(&[
        "```repl\nprint(1 / 0)\n```",
        "```repl\nZeroDivisionError: division by zero\n```",
        "```repl\nprint(1 / 1)\n```",
        "FINAL(1)",
    ])
    .await;
    assert_eq!(o.result.answer.as_deref(), Some("1"));
    let t = &o.result.trajectory.iterations;
    let block = &t[1].code_blocks[0];
    assert_eq!(block.repaired_from.as_deref().map(str::trim), Some("print(1 / 0)"), "the code that failed");
    assert_eq!((block.block.code.trim(), block.result.stdout.trim()), ("print(1 / 1)", "1.0"));
    // The repair request holds the code that failed and its error, not the echo.
    let asked = &o.root.requests()[2].messages[1].content;
    assert!(asked.contains("print(1 / 0)") && asked.contains("ZeroDivisionError"), "{asked}");
    assert!(o
        .events
        .iter()
        .any(|e| matches!(e, Event::Notice { message } if message.contains("error message as its reply"))));

    // Echoed as prose, or printed line by line, it is the same echo; a failed repair runs
    // nothing, and the same failure is not repaired twice.
    let o = run(&[
        "```repl\nprint(1 / 0)\n```",
        "Error: Traceback (most recent call last):\n  File \"<cell 1>\", line 1",
        "I cannot fix it.",
        "```repl\nprint(\"Error: Traceback (most recent call last):\")\n```",
        "FINAL(none)",
    ])
    .await;
    let t = &o.result.trajectory.iterations;
    assert!(t[1].code_blocks.is_empty() && t[2].code_blocks.is_empty(), "{t:?}");
    assert_eq!(o.root.requests().len(), 5, "one repair request, for two echoes");
    assert!(o.root.last_user(3).contains("was the error message, not new code"), "{}", o.root.last_user(3));
    assert_eq!(o.result.answer.as_deref(), Some("none"));

    // New code after an echoed line is the model's own fix, and runs as written.
    let o =
        run(&["```repl\nprint(1 / 0)\n```", "Error: ZeroDivisionError, so:\n```repl\nprint(2)\n```", "FINAL(2)"]).await;
    assert_eq!(o.result.trajectory.iterations[1].code_blocks[0].result.stdout.trim(), "2");
    assert_eq!(o.root.requests().len(), 3, "no repair request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_that_does_not_compile_is_not_taken_for_code_that_did() {
    let o = run(&["```repl\nprint(context[0].split('x'))\n```", "```repl\nimport x = 1\n```", "FINAL(no)"]).await;
    let block = &o.result.trajectory.iterations[0].code_blocks[0];
    assert!(block.repaired_from.is_none(), "{block:?}");
    assert!(block.result.error.as_deref().unwrap().contains("a Document is a whole file"), "{block:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_labels_the_question_lists_are_the_default_and_put_a_partial_list_right() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..6)
        .map(|i| {
            format!("Date: Jan 0{i}, 2023 || User: {i} || Text: a {} day out at the lake\n", ["good", "bad"][i % 2])
        })
        .collect();
    std::fs::write(dir.path().join("reviews.txt"), lines).unwrap();
    let folder = Folder::load(dir.path()).unwrap();
    let question = "The reviews are not labelled; label each as positive or negative. How many are positive?";
    let root = Scripted::new(&[
        "```repl\nprint(count_labels(['positive']))\n```",
        "```repl\nimport os\nos._exit(3)\n```",
        "```repl\nprint(count_labels())\n```",
        "FINAL(3)",
    ]);
    let sub = Arc::new(Labeller::default());
    let rlm = Rlm::new(root.clone(), sub.clone(), RlmConfig { judge_first: false, ..config(Budget::default()) });
    let r = rlm.run(&folder, question, CancelToken::default(), |_| {}).await.expect("the run completes");
    let t = &r.trajectory.iterations;
    let first = t[0].code_blocks[0].result.stdout.trim();
    assert!(first.starts_with("(judged against the question's own labels: positive, negative)"), "{first}");
    assert!(first.ends_with("{'positive': 3, 'negative': 3}"), "{first}");
    assert!(t[1].code_blocks[0].result.restarted);
    // The restart lost every variable; the host set the question's labels again.
    let third = t[2].code_blocks[0].result.stdout.trim();
    assert!(
        third.ends_with(
            "(positive 3, negative 3); fields: 'Date', 'User', 'Text', 'label'\n{'positive': 3, 'negative': 3}"
        ),
        "{third}"
    );
    assert_eq!(r.answer.as_deref(), Some("3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_s_run_greps_its_index_and_finds_a_file_saved_after_the_folder_was_read() {
    let data = tempfile::tempdir().unwrap();
    let (dir, _) = folder();
    let mut library = quarry_index::Library::open(data.path()).unwrap();
    let row = library.add(dir.path(), Some("notes")).unwrap();
    let plain = quarry_index::UpdateOptions { extractor: None, ..Default::default() };
    library.update(&row, &plain, &|_| {}, None).unwrap();
    let folder = library.folder(&row).unwrap();
    assert!(folder.index().is_some(), "a collection's folder carries its index");
    // Saved and indexed while the folder was in memory (the desktop watches an open collection):
    // the index has it, the documents in memory do not.
    std::fs::write(dir.path().join("late.txt"), "the needle moved to late.txt\n").unwrap();
    library.update(&row, &plain, &|_| {}, None).unwrap();
    assert!(!folder.documents().iter().any(|d| d.path == "late.txt"));

    let root = Scripted::new(&[
        "```repl\nhits = grep('needle')\nprint(sorted(h['path'] for h in hits))\n```",
        "```repl\nFINAL(len(hits))\n```",
    ]);
    let rlm = Rlm::new(root.clone(), Sub::new(), config(Budget::default()));
    let result = rlm.run(&folder, "Where is the needle?", CancelToken::default(), |_| {}).await.unwrap();
    let fed_back = root.last_user(1);
    assert!(fed_back.contains("['a.txt', 'late.txt']"), "{fed_back}");
    assert_eq!(result.answer.as_deref(), Some("2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_given_again_word_for_word_after_new_output_is_sent_back_once() {
    let o = run(&[
        "FINAL(The needle is not in these files.)",
        "```repl\nprint(grep('needle')[0]['text'])\n```",
        "FINAL(the needle is not in these files)",
        "FINAL(42)",
    ])
    .await;
    assert_eq!(o.result.answer.as_deref(), Some("42"));
    assert_eq!(o.result.iterations, 4);
    let told = o.root.last_user(3);
    assert!(told.contains("word for word the answer that was sent back before"), "{told}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_given_again_after_code_that_showed_nothing_new_is_taken() {
    let o = run(&[
        "FINAL(The needle is not in these files.)",
        "```repl\nn = len(grep('no such text'))\n```",
        "FINAL(The needle is not in these files.)",
    ])
    .await;
    assert_eq!(o.result.answer.as_deref(), Some("The needle is not in these files."));
    assert_eq!(o.result.iterations, 3);
}
