//! REPL semantics a model can work with, host functions, contexts and the protocol, all against
//! the real worker binary.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{config, error_of, repl, repl_with, run};
use quarry_repl::protocol::{HostMessage, WorkerConfig, WorkerMessage, PROTOCOL_VERSION};
use quarry_repl::{Context, ContextDocument, EchoHost, Environment, HostFunctions, HostResult, NoHost, Repl, Source};

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
        ContextDocument { pages: Vec::new(), path: "a.txt".into(), text: "one\ntwo".into() },
        ContextDocument { pages: Vec::new(), path: "sub/é.md".into(), text: "ünïcode".into() },
        ContextDocument { pages: Vec::new(), path: "empty.txt".into(), text: String::new() },
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
    let mut child = Command::new(crate::common::worker().program)
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
    let mut child = Command::new(crate::common::worker().program)
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

/// `(path, line_start, line_end, text)` of each chunk, as Python shows them.
const DESCRIBE: &str = "[(c.path, c.line_start, c.line_end, str(c)) for c in cs]";

#[test]
fn chunks_cut_a_str_at_line_ends() {
    let mut repl = repl();
    run(&mut repl, "text = 'alpha\\nbeta\\ngamma\\ndelta\\n'");
    let r = run(&mut repl, &format!("cs = chunks(text, max_chars=12)\n{DESCRIBE}"));
    assert_eq!(
        r.value.as_deref(),
        Some("[(None, 1, 2, 'alpha\\nbeta\\n'), (None, 3, 4, 'gamma\\ndelta\\n')]"),
        "{r:#?}"
    );
    // A Chunk is a str: concatenation, len() and str methods just work, and give plain strings.
    let r = run(&mut repl, "c = cs[1]\nisinstance(c, str), len(c), type('x: ' + c).__name__, c.upper(), c.source");
    assert_eq!(r.value.as_deref(), Some("(True, 12, 'str', 'GAMMA\\nDELTA\\n', '<str>:3-4')"));
    let r = run(&mut repl, "cs");
    assert_eq!(r.value.as_deref(), Some("[<chunk <str>:1-2, 11 chars>, <chunk <str>:3-4, 12 chars>]"));
    let c = r.variables.iter().find(|v| v.name == "c").unwrap();
    assert_eq!((c.type_name.as_str(), c.len), ("Chunk", Some(12)));
    assert_eq!(run(&mut repl, "''.join(chunks(text, 5)) == text").value.as_deref(), Some("True"));
    // Overlap: whole lines of the previous chunk's end start the next one.
    let r = run(&mut repl, &format!("cs = chunks(text, max_chars=12, overlap=6)\n{DESCRIBE}"));
    assert_eq!(
        r.value.as_deref(),
        Some("[(None, 1, 2, 'alpha\\nbeta\\n'), (None, 2, 3, 'beta\\ngamma\\n'), (None, 3, 4, 'gamma\\ndelta\\n')]")
    );
    // A line longer than max_chars is cut hard; its pieces all belong to that line.
    let r = run(&mut repl, &format!("cs = chunks('x' * 25 + '\\nshort\\n', 10)\n{DESCRIBE}"));
    assert_eq!(
        r.value.as_deref(),
        Some(
            "[(None, 1, 1, 'xxxxxxxxxx'), (None, 1, 1, 'xxxxxxxxxx'), (None, 1, 1, 'xxxxx\\n'), \
             (None, 2, 2, 'short\\n')]"
        )
    );
    assert_eq!(run(&mut repl, "chunks(''), chunks([])").value.as_deref(), Some("([], [])"));
    // A list of strings: each is cut on its own, lines counted from 1 in each.
    let r = run(&mut repl, "[(c.line_start, str(c)) for c in chunks(['a\\nb', 'c'], 2)]");
    assert_eq!(r.value.as_deref(), Some("[(1, 'a\\n'), (2, 'b'), (1, 'c')]"));
}

#[test]
fn chunks_rejects_bad_arguments_and_survives_assignment() {
    let mut repl = repl();
    for (call, message) in [
        ("chunks('x', 0)", "ValueError: chunks(): max_chars must be >= 1, got 0"),
        ("chunks('x', -5)", "ValueError: chunks(): max_chars must be >= 1, got -5"),
        ("chunks('x', 1.5)", "ValueError: chunks(): max_chars must be an int, not float"),
        ("chunks('x', True)", "ValueError: chunks(): max_chars must be an int, not bool"),
        ("chunks('x', 10, overlap=-1)", "ValueError: chunks(): overlap must be >= 0, got -1"),
        ("chunks('x', 10, overlap=10)", "ValueError: chunks(): overlap must be smaller than max_chars (10 >= 10)"),
        ("chunks(42)", "TypeError: chunks() takes a str, a Document, or a list of them (context), not int"),
        ("chunks(['a', 3])", "TypeError: chunks(): item 1 is a int; items must be str or Document"),
    ] {
        let r = run(&mut repl, call);
        assert!(error_of(&r).ends_with(message), "{call}: {r:#?}");
    }
    let r = run(&mut repl, "chunks = 1\nchunks");
    assert_eq!(r.value.as_deref(), Some("1"), "the assignment holds within its execution");
    let r = run(&mut repl, "len(chunks('a\\nb', 2))");
    assert_eq!(r.value.as_deref(), Some("2"), "and chunks is back in the next: {r:#?}");
    assert!(!r.variables.iter().any(|v| v.name == "chunks"), "reserved names are not listed");
    run(&mut repl, "del chunks");
    assert_eq!(run(&mut repl, "callable(chunks)").value.as_deref(), Some("True"));
}

fn documents() -> Context {
    Context::Documents(vec![
        ContextDocument {
            pages: Vec::new(),
            path: "a.txt".into(),
            text: "line one\nline two\nline three\nline four\n".into(),
        },
        ContextDocument { pages: Vec::new(), path: "b.md".into(), text: format!("# Title\n{}\nend", "x".repeat(50)) },
        ContextDocument { pages: Vec::new(), path: "empty.txt".into(), text: String::new() },
    ])
}

#[test]
fn chunks_of_documents_keep_their_paths_and_lines() {
    let mut repl = repl();
    repl.load_context(&documents()).unwrap();
    let r =
        run(&mut repl, "[c.source for c in chunks(context[0], 1000)], str(chunks(context[0])[0]) == context[0].text");
    assert_eq!(r.value.as_deref(), Some("(['a.txt:1-4'], True)"));
    let r = run(&mut repl, "cs = chunks(context, max_chars=20)\n[(c.source, len(c)) for c in cs]");
    assert_eq!(
        r.value.as_deref(),
        Some(
            "[('a.txt:1-2', 18), ('a.txt:3-3', 11), ('a.txt:4-4', 10), ('b.md:1-1', 8), ('b.md:2-2', 20), \
             ('b.md:2-2', 20), ('b.md:2-3', 14)]"
        ),
        "{r:#?}"
    );
    // Each chunk is exactly its lines (the pieces of a hard-cut line aside), and the chunks of a
    // document put together are the document: none spans two.
    let check = "def exact(c):\n    lines = by_path[c.path].split('\\n')[c.line_start - 1:c.line_end]\n    \
                 body = c[:-1] if c.endswith('\\n') else c\n    return body == '\\n'.join(lines)\n\
                 by_path = {d.path: d.text for d in context}\n\
                 [c.source for c in cs if not exact(c)], \
                 all(''.join(c for c in cs if c.path == d.path) == d.text for d in context)";
    let r = run(&mut repl, check);
    assert_eq!(r.value.as_deref(), Some("(['b.md:2-2', 'b.md:2-2', 'b.md:2-3'], True)"), "{r:#?}");
    // A filtered list of documents, and overlap across a longer text.
    run(&mut repl, "long = '\\n'.join('row %d of the table' % i for i in range(1, 201))");
    let r = run(
        &mut repl,
        "cs = chunks([d for d in context if d.path.endswith('.txt')] + [long], max_chars=300, overlap=60)\n\
         srcs = [(c.path, c.line_start, c.line_end) for c in cs]\n\
         by_path = {'a.txt': context[0].text, None: long}\n\
         ok = all(exact(c) and len(c) <= 300 for c in cs)\n\
         pairs = [(a, b) for a, b in zip(cs, cs[1:]) if a.path == b.path]\n\
         overlapping = all(b.line_start <= a.line_end < b.line_end for a, b in pairs)\n\
         repeats = all(a.endswith(b[:len(a) - a.index(b[:10])]) for a, b in pairs)\n\
         srcs[0], srcs[1][0], srcs[-1][2], ok, overlapping, repeats, len(pairs)",
    );
    assert_eq!(r.value.as_deref(), Some("(('a.txt', 1, 4), None, 200, True, True, True, 17)"), "{r:#?}");
}

/// A document without pages.
fn doc(path: &str, text: &str) -> ContextDocument {
    ContextDocument { pages: Vec::new(), path: path.into(), text: text.into() }
}

#[test]
fn records_parse_markdown_table_rows_and_log_lines() {
    let mut repl = repl();
    repl.load_context(&Context::Documents(vec![
        doc("notes/table.md", "# Reviews\n\n| date | user | text |\n|---|:---:|---|\n| 31 Dec 2022 | 39005 | a weak movie / a great end |\n| 02 Jan 2023 | 7 | fine |\n\nAfter the table | not a row\n"),
        doc("activity.log", "[2024-01-03 21:38:23] user=32447 :: as surreal as a dream :: really\nstarting up\nts=5 level=warn - disk low\n"),
    ]))
    .unwrap();
    let r = run(&mut repl, "[(r.path, r.line, dict(r)) for r in records()]");
    assert_eq!(
        r.value.as_deref(),
        Some(
            "[('notes/table.md', 5, {'date': '31 Dec 2022', 'user': 39005, 'text': 'a weak movie / a great end'}), \
             ('notes/table.md', 6, {'date': '02 Jan 2023', 'user': 7, 'text': 'fine'}), \
             ('activity.log', 1, {'time': '2024-01-03 21:38:23', 'user': 32447, 'text': 'as surreal as a dream :: really'}), \
             ('activity.log', 3, {'ts': 5, 'level': 'warn', 'text': 'disk low'})]"
        ),
        "{r:#?}"
    );
}

#[test]
fn records_parse_field_lines_json_lines_and_tables() {
    let mut repl = repl();
    repl.load_context(&Context::Documents(vec![
        doc("log.txt", "Date: Jan 02, 2023 || User: 311 || Text: Great: really\nnot a record\n\nDate: Jan 03, 2023 || User: 75 || Text: Never again\n"),
        doc("events.jsonl", "{\"id\": 7, \"kind\": \"open\"}\n[1, 2]\n"),
        doc("fees.csv", "name,amount\n\"Smith, J\",10.5\nDoe,05\n"),
        doc("prose.md", "# Lease\nThe term is a year.\n"),
    ]))
    .unwrap();
    let r = run(&mut repl, "rs = records()\n[(r.path, r.line, dict(r)) for r in rs]");
    assert_eq!(
        r.value.as_deref(),
        Some(
            "[('log.txt', 1, {'Date': 'Jan 02, 2023', 'User': 311, 'Text': 'Great: really'}), \
             ('log.txt', 4, {'Date': 'Jan 03, 2023', 'User': 75, 'Text': 'Never again'}), \
             ('events.jsonl', 1, {'id': 7, 'kind': 'open'}), \
             ('fees.csv', 2, {'name': 'Smith, J', 'amount': 10.5}), ('fees.csv', 3, {'name': 'Doe', 'amount': '05'})]"
        ),
        "{r:#?}"
    );
    // Numbers are numbers (ids compared with ints match), and the list is listed as a variable.
    let r = run(&mut repl, "[r['Text'] for r in rs if r.get('User') in [75, 12]]");
    assert_eq!(r.value.as_deref(), Some("['Never again']"));
    assert!(r.variables.iter().any(|v| v.name == "rs" && v.len == Some(5)), "{:?}", r.variables);
    // A wrong field name is told the right ones; text with no records is told so.
    let e = error_of(&run(&mut repl, "rs[0]['Instance']")).to_string();
    assert!(
        e.contains("'Instance' is not a field of this record (log.txt:1); its fields are 'Date', 'User', 'Text'"),
        "{e}"
    );
    let e = error_of(&run(&mut repl, "records(context[3])")).to_string();
    assert!(e.contains("records(): no line is a record"), "{e}");
    assert_eq!(run(&mut repl, "len(records('a: 1 | b: 2'))").value.as_deref(), Some("1"));
    // `records = records()` keeps a callable: the list calls the function.
    run(&mut repl, "records = records()");
    assert_eq!(
        run(&mut repl, "len(records), len(records()), len(records(context[0]))").value.as_deref(),
        Some("(5, 5, 2)")
    );
    // Unlike the reserved helpers, `records` is the model's to reuse as a variable name.
    run(&mut repl, "records = [1, 2]");
    assert_eq!(run(&mut repl, "records").value.as_deref(), Some("[1, 2]"));
}

#[test]
fn a_document_used_as_a_line_says_how_to_get_lines() {
    let mut repl = repl();
    repl.load_context(&documents()).unwrap();
    let e = error_of(&run(&mut repl, "[d.split('line')[1] for d in context]")).to_string();
    assert!(
        e.contains("a Document is a whole file, not a line: use .text for its text, .lines() for its lines"),
        "{e}"
    );
    let r = run(&mut repl, "[d.split('line')[1] for d in context]");
    assert!(r.hint.as_deref().is_some_and(|h| h.starts_with("a Document is a whole file")), "{r:#?}");
    let r = run(&mut repl, "context[0].nothing");
    assert!(error_of(&r).contains("'Document' object has no attribute 'nothing'"), "{r:#?}");
    assert_eq!(r.hint, None, "an error that names no fix carries no hint");
    let r = run(&mut repl, "[l for l in context[0]][:2], 'two' in context[0], 'zzz' in context[0]");
    assert_eq!(r.value.as_deref(), Some("(['line one', 'line two'], True, False)"));
}

/// An [`EchoHost`] that records what `note_sources` hears.
#[derive(Default)]
struct SourcesHost {
    echo: EchoHost,
    notes: Mutex<Vec<(String, Vec<Source>)>>,
}

impl HostFunctions for SourcesHost {
    fn llm_query(&self, prompt: &str, model: Option<&str>) -> HostResult<String> {
        self.echo.llm_query(prompt, model)
    }

    fn note_sources(&self, call: &str, sources: &[Source]) {
        self.notes.lock().unwrap().push((call.to_string(), sources.to_vec()));
    }
}

#[test]
fn prompts_built_from_chunks_name_their_sources() {
    let host = Arc::new(SourcesHost::default());
    let mut repl = Repl::new(config(), host.clone()).unwrap();
    let contract: String =
        (1..=60).map(|i| format!("Clause {i}: the supplier shall deliver item {i} within {i} days.\n")).collect();
    let other: String = (1..=10).map(|i| format!("Note {i}: nothing to see in this paragraph.\n")).collect();
    repl.load_context(&Context::Documents(vec![
        ContextDocument { pages: Vec::new(), path: "contract.txt".into(), text: contract },
        ContextDocument { pages: Vec::new(), path: "notes/other.md".into(), text: other },
    ]))
    .unwrap();
    let src = |path: &str, a: usize, b: usize| Source { path: path.into(), line_start: a, line_end: b };
    let take = |host: &SourcesHost| std::mem::take(&mut *host.notes.lock().unwrap());

    let r = run(&mut repl, "cs = chunks(context, max_chars=600, overlap=150)\n[c.source for c in cs[:3]]");
    assert_eq!(r.value.as_deref(), Some("['contract.txt:1-10', 'contract.txt:9-17', 'contract.txt:16-24']"), "{r:#?}");
    let r = run(&mut repl, "answer = llm_query('Summarise:\\n' + cs[1])\nanswer[:17]");
    assert_eq!(r.value.as_deref(), Some("'echo: Summarise:\\n'"), "{r:#?}");
    // Only the chunk itself: its neighbours overlap it but are not in the prompt.
    assert_eq!(take(&host), vec![("llm_query".to_string(), vec![src("contract.txt", 9, 17)])]);

    // Pasted mid-line, a chunk passed as the prompt itself, several chunks in one prompt, and
    // prompts with no chunk at all.
    run(&mut repl, "llm_query(f'Does this mention item 30? {cs[3]} Answer yes or no.')");
    run(&mut repl, "llm_query(cs[-1])");
    run(&mut repl, "llm_query('\\n---\\n'.join(cs[4:6]))");
    run(&mut repl, "llm_query('no chunk here'); llm_query(chunks('a plain string, not a document\\n' * 5)[0])");
    let other = vec![src("notes/other.md", 1, 10)];
    assert_eq!(
        take(&host),
        vec![
            ("llm_query".to_string(), vec![src("contract.txt", 23, 31)]),
            ("llm_query".to_string(), other.clone()),
            ("llm_query".to_string(), vec![src("contract.txt", 30, 38), src("contract.txt", 37, 45)]),
        ]
    );

    let r =
        run(&mut repl, "out = llm_query_batched([cs[0], 'Q: ' + cs[2] + ' end', 'none', 'x\\n' + cs[-1]])\nlen(out)");
    assert_eq!(r.value.as_deref(), Some("4"), "{r:#?}");
    assert_eq!(
        take(&host),
        vec![(
            "llm_query_batched".to_string(),
            vec![src("contract.txt", 1, 10), src("contract.txt", 16, 24), src("notes/other.md", 1, 10)]
        )]
    );
    run(&mut repl, "llm_query_batched(['a', 'b'])");
    assert!(take(&host).is_empty());

    // A new context forgets the old chunks (a chunk passed itself still names its lines).
    repl.load_context(&Context::Text("new".into())).unwrap();
    run(&mut repl, "llm_query('Summarise:\\n' + cs[1])");
    assert!(take(&host).is_empty());
}

#[test]
fn symbols_and_imports_read_python_structure_not_text() {
    let mut repl = repl();
    let module = "\
import os, os.path as osp
from collections import Counter
from . import sibling
from ..util import helper
s = 'class NotAClass(Base): def parse_fake(): pass'
# def parse_comment(): and import tempfile
class Suite(unittest.TestCase, Mixin):
    def parse_a(self):
        def parse_inner():
            pass
    async def run(self):
        pass
    if True:
        def parse_b(self):
            pass
class Other(TestCase):
    class Nested:
        def deep(self):
            pass
def parse_top():
    pass
";
    repl.load_context(&Context::Documents(vec![
        ContextDocument { pages: Vec::new(), path: "pkg/sub/mod.py".into(), text: module.into() },
        ContextDocument { pages: Vec::new(), path: "pkg/broken.py".into(), text: "def (:\n".into() },
        ContextDocument { pages: Vec::new(), path: "notes.txt".into(), text: "class Fake(TestCase):\n".into() },
    ]))
    .unwrap();
    let count = |repl: &mut Repl, expr: &str| run(repl, expr).value.unwrap_or_else(|| panic!("no value for {expr}"));
    assert_eq!(
        count(&mut repl, "[(s['name'], s['kind'], s['parent']) for s in symbols(name='parse_')]"),
        "[('parse_a', 'method', 'Suite'), ('parse_inner', 'function', 'parse_a'), ('parse_b', 'method', 'Suite'), \
         ('parse_top', 'function', None)]",
        "defs inside if-bodies keep their scope; strings and comments do not count"
    );
    assert_eq!(
        count(&mut repl, "[(s['name'], s['bases']) for s in symbols(kind='class')]"),
        "[('Suite', ['unittest.TestCase', 'Mixin']), ('Other', ['TestCase']), ('Nested', [])]"
    );
    assert_eq!(count(&mut repl, "len([s for s in symbols(kind='method') if s['parent'] == 'Suite'])"), "3");
    assert_eq!(count(&mut repl, "len(symbols(kind='method', parent='Suite'))"), "3");
    assert_eq!(
        count(&mut repl, "[s['name'] for s in symbols(base='TestCase')]"),
        "['Suite', 'Other']",
        "a base matches as written or as module.Base"
    );
    assert_eq!(count(&mut repl, "[s['async'] for s in symbols('run')]"), "[True]");
    let r = run(&mut repl, "[(i['module'], i['line']) for i in imports()]");
    assert_eq!(
        r.value.as_deref(),
        Some("[('os', 1), ('os.path', 1), ('collections', 2), ('pkg.sub', 3), ('pkg.util', 4)]"),
        "relative imports are resolved against the file's package"
    );
    assert!(r.stderr.contains("pkg/broken.py"), "a file that does not parse is named: {r:#?}");
    assert_eq!(count(&mut repl, "len(imports('os'))"), "2");
    assert_eq!(count(&mut repl, "imports('collections')[0]['names']"), "['Counter']");
    assert!(error_of(&run(&mut repl, "symbols(kind='module')")).contains("kind must be"));
    let r = run(&mut repl, "symbols(kind='import', module='os')");
    let e = error_of(&r);
    assert!(e.contains("not module (imports are listed by imports(module=...))"), "{e}");
    assert!(error_of(&run(&mut repl, "symbols(kind='import')")).contains("imports are listed by imports"));
    let r = run(&mut repl, "len(symbols(kind='class', parent='TestCase'))");
    assert_eq!(r.value.as_deref(), Some("0"));
    assert!(r.stderr.contains("2 classes derive from it: use base='TestCase'"), "{r:#?}");
    let r = run(&mut repl, "symbols('Suite', kind='method')");
    assert!(r.stderr.contains("'Suite' is a class with 3 methods: use parent='Suite'"), "{r:#?}");
    let r = run(&mut repl, "symbols(kind='method', parent='Parser')");
    assert!(r.stderr.contains("nothing in these files is named 'Parser'"), "{r:#?}");
    let r = run(&mut repl, "len(symbols(base='Suite'))");
    assert!(r.stderr.contains("use parent='Suite'"), "{r:#?}");
}

/// A sub model that scores like a keyword rule: a label fits a text that contains it, and "yes"
/// fits a text that mentions insurance. It counts the prompts it scored.
#[derive(Default)]
struct KeywordScorer {
    echo: EchoHost,
    scored: Mutex<usize>,
}

impl HostFunctions for KeywordScorer {
    fn files(&self, glob: &str) -> HostResult<Vec<String>> {
        self.echo.files(glob)
    }

    fn search(&self, query: &str, k: usize) -> HostResult<serde_json::Value> {
        self.echo.search(query, k)
    }

    fn llm_score(
        &self,
        prompts: &[String],
        candidates: &[String],
        _model: Option<&str>,
    ) -> HostResult<serde_json::Value> {
        *self.scored.lock().unwrap() += prompts.len();
        let fits = |candidate: &str, text: &str| match candidate {
            "yes" => text.contains("insurance"),
            "no" => !text.contains("insurance"),
            label => text.contains(label),
        };
        let rows = prompts
            .iter()
            .map(|p| {
                let text = p.rsplit("Text:").next().unwrap_or("").to_lowercase();
                candidates
                    .iter()
                    .map(|c| {
                        let logprob = if fits(c, &text) { 0.0 } else { -5.0 };
                        serde_json::json!({"logprob": logprob, "first_logprob": logprob})
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>();
        Ok(serde_json::json!(rows))
    }
}

#[test]
fn strategies_label_count_and_find_files_in_one_call_each() {
    let echo = EchoHost {
        documents: quarry_repl::DocumentsHost {
            documents: vec![(
                "lease.txt".into(),
                "The tenant shall keep insurance for the building.\nRent is due monthly.\n".into(),
            )],
        },
        delay: Duration::ZERO,
    };
    let host = Arc::new(KeywordScorer { echo, ..Default::default() });
    let mut repl = Repl::new(config(), host.clone()).unwrap();
    repl.load_context(&Context::Documents(vec![
        doc("reviews.csv", "date,user_id,text\n2023-01-02,7,a positive visit\n2023-01-03,7,a negative visit\n2023-01-04,9,positive again\n"),
        doc("lease.txt", "The tenant shall keep insurance for the building.\nRent is due monthly.\n"),
        doc("nda.txt", "Each party keeps the other's secrets.\n"),
    ]))
    .unwrap();
    // Counting unlabelled records is one call, and it says what it judged.
    let r = run(&mut repl, "count_labels(['positive', 'negative'])");
    assert_eq!(r.value.as_deref(), Some("{'positive': 2, 'negative': 1}"), "{r:#?}");
    assert!(
        r.stdout.contains("label_records: 3 records labelled by their 'text' field (positive 2, negative 1)"),
        "{}",
        r.stdout
    );
    // Per user, with the field named as people write it; nothing is scored twice.
    let scored = *host.scored.lock().unwrap();
    let r = run(&mut repl, "count_labels(['positive', 'negative'], by='user')");
    assert_eq!(r.value.as_deref(), Some("{7: {'positive': 1, 'negative': 1}, 9: {'positive': 1, 'negative': 0}}"));
    assert_eq!(*host.scored.lock().unwrap(), scored, "labels already judged are not judged again");
    // Labelled records keep their sources and can be filtered before labelling.
    let r = run(&mut repl, "[(r.path, r.line, r['label']) for r in label_records(['positive', 'negative'], where=lambda r: r['user_id'] == 9)]");
    assert_eq!(r.value.as_deref(), Some("[('reviews.csv', 4, 'positive')]"));
    // A yes/no question over whole files names the files and the lines that said yes.
    let r = run(&mut repl, "files_where('Does it require insurance?')");
    assert_eq!(r.value.as_deref().map(|v| v.contains("'path': 'lease.txt', 'lines': '1-2'")), Some(true), "{r:#?}");
    assert!(r.stdout.contains("files_where: 1 of 3 documents"), "{}", r.stdout);
    // One label is not a judgement: every record would get it.
    let e = error_of(&run(&mut repl, "count_labels(['positive'])")).to_string();
    assert!(e.contains("need every label an item could have (at least two)"), "{e}");
    // A passage search keeps only the candidates the sub model confirms.
    let r = run(&mut repl, "[(h['path'], h['line']) for h in find_passage('insurance')]");
    assert_eq!(r.value.as_deref(), Some("[('lease.txt', 1)]"), "{r:#?}");
    // A field that does not exist is told the ones that do.
    let e = error_of(&run(&mut repl, "count_labels(['a', 'b'], by='author')")).to_string();
    assert!(e.contains("'author' is not a field of these records; their fields are 'date', 'user_id', 'text'"), "{e}");
}

#[test]
fn an_error_that_says_what_to_change_carries_it_as_the_hint() {
    let mut repl = repl();
    repl.load_context(&documents()).unwrap();
    let r = run(&mut repl, "rows = records('Date: Jan 02 || User: 3')\nrows[0]['Instance']");
    assert!(r.hint.as_deref().is_some_and(|h| h.contains("is not a field of this record")), "{r:#?}");
    // Python 3.12's suggestion, written out: 3.11's traceback module adds none.
    let r = run(&mut repl, "raise AttributeError(\"'str' object has no attribute 'uper'. Did you mean: 'upper'?\")");
    assert!(r.hint.as_deref().is_some_and(|h| h.ends_with("Did you mean: 'upper'?")), "{r:#?}");
    let r = run(&mut repl, "import datetime\ndatetime.datetime.strptime('Apr 07, 2024', '%Y-%m-%d')");
    assert!(r.hint.as_deref().is_some_and(|h| h.contains("does not match format '%Y-%m-%d'")), "{r:#?}");
    for code in ["1 / 0", "raise ValueError('nothing to change here')", "print(1"] {
        let r = run(&mut repl, code);
        assert!(r.error.is_some() && r.hint.is_none(), "{code}: {r:#?}");
    }
}
