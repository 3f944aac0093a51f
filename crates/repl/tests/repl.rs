//! REPL semantics a model can work with, host functions, contexts and the protocol, all against
//! the real worker binary.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{config, error_of, repl, repl_with, run};
use quarry_repl::protocol::{HostMessage, WorkerConfig, WorkerMessage, PROTOCOL_VERSION};
use quarry_repl::{Context, ContextDocument, EchoHost, Environment, NoHost, Repl};

#[test]
fn the_namespace_persists_and_trailing_expressions_show() {
    let mut repl = repl();
    let r = run(&mut repl, "x = 20\ny = x + 1");
    assert_eq!((r.value, r.error), (None, None));
    let r = run(&mut repl, "x + y");
    assert_eq!(r.value.as_deref(), Some("41"));
    let r = run(&mut repl, "def f(a):\n    return a * 2\nf(x)");
    assert_eq!(r.value.as_deref(), Some("40"));
    let r = run(&mut repl, "None");
    assert_eq!(r.value, None, "None shows nothing, as in a notebook");
    let r = run(&mut repl, "[1, 'a']\n");
    assert_eq!(r.value.as_deref(), Some("[1, 'a']"));
    let r = run(&mut repl, "_");
    assert_eq!(r.value.as_deref(), Some("[1, 'a']"), "`_` is the last shown value");
    let names: Vec<_> = r.variables.iter().map(|v| (v.name.as_str(), v.type_name.as_str(), v.len)).collect();
    assert!(names.contains(&("x", "int", None)), "{names:?}");
    assert!(names.contains(&("f", "function", None)), "{names:?}");
    assert!(!names.iter().any(|(n, _, _)| *n == "llm_query" || *n == "context"), "reserved names are not listed");
}

#[test]
fn stdout_and_stderr_are_captured_separately() {
    let mut repl = repl();
    let r = run(&mut repl, "import sys\nprint('out', 1)\nprint('err', file=sys.stderr)\nsys.stdout.write('more')");
    assert_eq!(r.stdout, "out 1\nmore");
    assert_eq!(r.stderr, "err\n");
    assert_eq!(r.value.as_deref(), Some("4"), "write() returns its length, shown as the trailing value");
    assert!(r.duration > Duration::ZERO);
}

#[test]
fn syntax_errors_name_line_and_column_and_nothing_runs() {
    let mut repl = repl();
    let r = run(&mut repl, "ran = True\nprint('side effect')\nif x\n    pass");
    let e = error_of(&r);
    assert!(e.starts_with("SyntaxError: expected ':' (line 3, column 5)"), "{e}");
    assert_eq!(r.stdout, "");
    assert!(error_of(&run(&mut repl, "ran")).contains("NameError"), "line 1 did not run");
    // Errors the compiler (not the parser) finds are also caught before anything runs.
    let r = run(&mut repl, "ran = True\nreturn 5");
    assert!(error_of(&r).starts_with("SyntaxError: 'return' outside function (line 2"), "{r:#?}");
    assert!(error_of(&run(&mut repl, "ran")).contains("NameError"));
}

#[test]
fn tracebacks_start_at_the_users_code() {
    let mut repl = repl();
    let r = run(&mut repl, "def inner():\n    return 1 / 0\n\ninner()");
    let e = error_of(&r);
    assert!(e.starts_with("Traceback (most recent call last):\n  File \"<cell 1>\", line 4"), "{e}");
    assert!(e.contains("line 2, in inner\n    return 1 / 0"), "{e}");
    assert!(e.ends_with("ZeroDivisionError: division by zero"), "{e}");
    assert!(!e.contains("quarry harness"), "{e}");
    // The failing execution's earlier statements did run (Python semantics).
    let r = run(&mut repl, "a = 1\nb = undefined_name");
    assert!(error_of(&r).ends_with("NameError: name 'undefined_name' is not defined"));
    assert_eq!(run(&mut repl, "a").value.as_deref(), Some("1"));
}

#[test]
fn output_is_truncated_head_and_tail_to_the_budget() {
    let mut cfg = config();
    cfg.output_budget = 100;
    let mut repl = repl_with(cfg);
    let r = run(&mut repl, "for i in range(1000):\n    print(i)");
    let total: usize = (0..1000).map(|i: usize| i.to_string().len() + 1).sum();
    assert!(r.stdout.starts_with("0\n1\n2\n"), "{}", r.stdout);
    assert!(r.stdout.ends_with("998\n999\n"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("\n... [{} characters truncated] ...\n", total - 100)), "{}", r.stdout);
    let r = run(&mut repl, "'y' * 1000");
    let v = r.value.unwrap();
    assert!(v.contains(&format!("[{} characters truncated]", 1002 - 100)), "{v}");
    // Under the budget nothing is cut.
    let r = run(&mut repl, "print('z' * 100, end='')");
    assert_eq!(r.stdout, "z".repeat(100));
}

#[test]
fn final_and_final_var_set_the_answer() {
    let mut repl = repl();
    let r = run(&mut repl, "FINAL('42 days')");
    assert_eq!(r.final_answer.as_deref(), Some("42 days"));
    let r = run(&mut repl, "answer = {'days': 30}\nFINAL_VAR('answer')");
    assert_eq!(r.final_answer.as_deref(), Some("{'days': 30}"));
    let r = run(&mut repl, "FINAL_VAR('nope')");
    assert!(error_of(&r).contains("FINAL_VAR: there is no variable named 'nope'"));
    assert_eq!(r.final_answer, None);
    let r = run(&mut repl, "1");
    assert_eq!(r.final_answer, None, "an answer belongs to one execution");
}

#[test]
fn host_functions_reach_the_host() {
    let mut repl = repl();
    let r = run(&mut repl, "llm_query('hi', model='sub')");
    assert_eq!(r.value.as_deref(), Some("'echo[sub]: hi'"));
    let r = run(&mut repl, "llm_query_batched(['a', 'b', 'c'])");
    assert_eq!(r.value.as_deref(), Some("['echo: a', 'echo: b', 'echo: c']"));
    let r = run(&mut repl, "rlm_query('sub-question', context={'k': 1})");
    assert_eq!(r.value.as_deref(), Some(r#"'rlm: sub-question ({"k":1})'"#));
    let r = run(&mut repl, "files('*.md')");
    assert_eq!(r.value.as_deref(), Some("['dir/b.md']"));
    let r = run(&mut repl, "read('a.txt', 2, 2)");
    assert_eq!(r.value.as_deref(), Some("'the notice period is 30 days'"));
    let r = run(&mut repl, "[(h['path'], h['line']) for h in grep('notice', ignore_case=True)]");
    assert_eq!(r.value.as_deref(), Some("[('a.txt', 2), ('dir/b.md', 2)]"));
    let r = run(&mut repl, "search('days', k=1)");
    assert!(r.value.unwrap().contains("a.txt"));
    let r = run(&mut repl, "read('missing.txt')");
    assert!(error_of(&r).contains("HostError: read: no document named \"missing.txt\""), "{r:#?}");
}

#[test]
fn without_a_host_calls_fail_with_a_clear_error() {
    let mut repl = Repl::new(config(), Arc::new(NoHost)).unwrap();
    let r = run(&mut repl, "try:\n    llm_query('x')\nexcept HostError as e:\n    print(e)");
    assert_eq!(r.stdout, "llm_query: llm_query is not available in this REPL (no host provides it)\n");
}

#[test]
fn batched_and_threaded_calls_are_served_concurrently() {
    let host = Arc::new(EchoHost { delay: Duration::from_millis(400), ..Default::default() });
    let mut repl = Repl::new(config(), host).unwrap();
    let t = Instant::now();
    let r = run(&mut repl, "llm_query_batched([str(i) for i in range(5)])");
    assert_eq!(r.value.as_deref(), Some("['echo: 0', 'echo: 1', 'echo: 2', 'echo: 3', 'echo: 4']"));
    assert!(t.elapsed() < Duration::from_millis(1600), "5 x 400 ms took {:?}: not concurrent", t.elapsed());
    // Python threads each calling llm_query overlap on the host too.
    let t = Instant::now();
    let r = run(
        &mut repl,
        "from concurrent.futures import ThreadPoolExecutor\nwith ThreadPoolExecutor(5) as ex:\n    out = list(ex.map(llm_query, 'abcde'))\nout",
    );
    assert_eq!(r.value.as_deref(), Some("['echo: a', 'echo: b', 'echo: c', 'echo: d', 'echo: e']"), "{r:#?}");
    assert!(t.elapsed() < Duration::from_millis(1600), "took {:?}: not concurrent", t.elapsed());
}

#[test]
fn time_in_host_calls_does_not_count_against_the_limit() {
    let host = Arc::new(EchoHost { delay: Duration::from_millis(1500), ..Default::default() });
    let mut cfg = config();
    cfg.timeout = Duration::from_secs(1);
    let mut repl = Repl::new(cfg, host).unwrap();
    let r = run(&mut repl, "llm_query('slow model')");
    assert_eq!(r.error, None, "{r:#?}");
    assert_eq!(r.value.as_deref(), Some("'echo: slow model'"));
}

#[test]
fn a_text_context_is_a_str() {
    let mut repl = repl();
    let info = repl.load_context(&Context::Text("héllo\nwörld".into())).unwrap();
    assert_eq!((info.kind.as_str(), info.chars), ("str", 11));
    let r = run(&mut repl, "type(context).__name__, len(context), context.splitlines()[1]");
    assert_eq!(r.value.as_deref(), Some("('str', 11, 'wörld')"));
    // Reassigning `context` lasts one execution; the loaded one comes back.
    run(&mut repl, "context = None");
    assert_eq!(run(&mut repl, "len(context)").value.as_deref(), Some("11"));
    // A new load replaces it.
    repl.load_context(&Context::Text(String::new())).unwrap();
    assert_eq!(run(&mut repl, "context").value.as_deref(), Some("''"));
}

#[test]
fn a_folder_context_is_a_lazy_sequence_of_documents() {
    let mut repl = repl();
    let docs = vec![
        ContextDocument { path: "a.txt".into(), text: "one\ntwo".into() },
        ContextDocument { path: "sub/é.md".into(), text: "ünïcode".into() },
        ContextDocument { path: "empty.txt".into(), text: String::new() },
    ];
    let info = repl.load_context(&Context::Documents(docs)).unwrap();
    assert_eq!((info.kind.as_str(), info.documents), ("documents", 3));
    let r = run(&mut repl, "len(context), context[0].path, context[0].lines(), context[1].text, context[2].text");
    assert_eq!(r.value.as_deref(), Some("(3, 'a.txt', ['one', 'two'], 'ünïcode', '')"), "{r:#?}");
    let r = run(&mut repl, "[d.path for d in context if 'two' in d.text], context.paths()");
    assert_eq!(r.value.as_deref(), Some("(['a.txt'], ['a.txt', 'sub/é.md', 'empty.txt'])"));
    let r = run(&mut repl, "context");
    assert!(r.value.unwrap().starts_with("Documents(3 files, "));
}

#[test]
fn a_100_mb_context_arrives_whole_and_survives_a_restart() {
    let mut repl = repl();
    let mut text = "0123456789abcdef".repeat(100 << 16);
    text.push('!');
    let info = repl.load_context(&Context::Text(text)).unwrap();
    assert_eq!(info.chars, (100 << 20) + 1);
    let r = run(&mut repl, "len(context), context[-2:], context.count('f')");
    assert_eq!(r.value, Some(format!("({}, 'f!', {})", (100 << 20) + 1, 100 << 16)));
    // The worker dies; the context is data, not a variable, and comes back.
    let r = run(&mut repl, "import os; os._exit(1)");
    assert!(r.restarted);
    assert_eq!(run(&mut repl, "len(context)").value, Some(((100 << 20) + 1).to_string()));
}

#[test]
fn the_worker_speaks_the_protocol_and_exits_when_stdin_closes() {
    let scratch = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::worker().program)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let start = HostMessage::Start {
        protocol: PROTOCOL_VERSION,
        config: WorkerConfig {
            scratch: scratch.path().to_path_buf(),
            readable: vec![],
            limits: Default::default(),
            output_budget: 8000,
            allow_unconfined: false,
            pretend_unavailable: vec![],
        },
    };
    writeln!(stdin, "{}", serde_json::to_string(&start).unwrap()).unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    match serde_json::from_str::<WorkerMessage>(&line).unwrap() {
        WorkerMessage::Ready { protocol, .. } => assert_eq!(protocol, PROTOCOL_VERSION),
        other => panic!("expected ready, got {other:?}"),
    }
    writeln!(stdin, r#"{{"type":"execute","id":5,"code":"print('hi')\n6 * 7"}}"#).unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    match serde_json::from_str::<WorkerMessage>(&line).unwrap() {
        WorkerMessage::Result { id, result } => {
            assert_eq!(id, 5);
            assert_eq!((result.stdout.as_str(), result.value.as_deref()), ("hi\n", Some("42")));
        }
        other => panic!("expected a result, got {other:?}"),
    }
    drop(stdin);
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the worker did not exit after stdin closed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_worker_of_another_protocol_version_refuses() {
    let mut child = Command::new(common::worker().program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let config = serde_json::json!({
        "scratch": "/tmp", "readable": [], "output_budget": 10, "allow_unconfined": false,
        "limits": {"memory_bytes": 1, "cpu_seconds": 1, "file_size_bytes": 1, "open_files": 1}
    });
    writeln!(stdin, "{}", serde_json::json!({"type": "start", "protocol": 999, "config": config})).unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    match serde_json::from_str::<WorkerMessage>(&line).unwrap() {
        WorkerMessage::Refused { message } => assert!(message.contains("protocol version 999"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!child.wait().unwrap().success());
}

#[test]
fn standard_library_modules_import_under_confinement() {
    // Lazy imports read the Python installation after lockdown: it must stay readable.
    let mut repl = repl();
    let r = run(&mut repl, "import json, re, csv, collections, datetime, decimal, sqlite3, ctypes, asyncio\njson.dumps(re.findall(r'\\d+', 'a1b22'))");
    assert_eq!(r.error, None, "{r:#?}");
    assert_eq!(r.value.as_deref(), Some("'[\"1\", \"22\"]'"));
    let r = run(&mut repl, "import asyncio\nasync def f():\n    return 7\nasyncio.run(f())");
    assert_eq!(r.value.as_deref(), Some("7"), "{r:#?}");
}

#[test]
fn input_reads_nothing() {
    let mut repl = repl();
    let r = run(&mut repl, "input()");
    assert!(error_of(&r).contains("EOFError"), "{r:#?}");
    let r = run(&mut repl, "import sys; sys.__stdin__.read()");
    assert_eq!(r.value.as_deref(), Some("''"), "fd 0 is /dev/null, not the protocol pipe");
}
