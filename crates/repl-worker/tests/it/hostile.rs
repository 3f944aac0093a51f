//! The hostile-code suite: code a prompt-injected model might write. Each case asserts the
//! specific outcome, that the host is unharmed (this test process is the host: a signal that got
//! through would end it), and that the next execution works.

use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

use crate::common::{assert_healthy, config, error_of, repl, repl_with, run};

// --- files -------------------------------------------------------------------------------

#[test]
fn reading_etc_passwd_is_denied() {
    let mut repl = repl();
    let r = run(&mut repl, "open('/etc/passwd').read()");
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    assert_eq!(r.value, None);
    assert_healthy(&mut repl);
}

#[test]
fn reading_an_ssh_key_is_denied() {
    // A fake home with a key, outside the sandbox (the real ~/.ssh may not exist).
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    let key = home.path().join(".ssh/id_ed25519");
    std::fs::write(&key, "-----BEGIN OPENSSH PRIVATE KEY-----").unwrap();
    let mut repl = repl();
    let r = run(&mut repl, &format!("open({:?}).read()", key.display().to_string()));
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    let r = run(&mut repl, &format!("import os; os.listdir({:?})", home.path().join(".ssh").display().to_string()));
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    // And the worker's own HOME is its scratch directory, not the user's.
    let r = run(&mut repl, "import os; os.path.expanduser('~')");
    assert_eq!(r.value, Some(format!("{:?}", repl.scratch().display().to_string()).replace('"', "'")));
    assert_healthy(&mut repl);
}

#[test]
fn listing_the_root_directory_is_denied() {
    let mut repl = repl();
    let r = run(&mut repl, "import os; os.listdir('/')");
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    assert_healthy(&mut repl);
}

#[test]
fn writing_outside_scratch_is_denied() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("planted.txt");
    let mut repl = repl();
    let r = run(&mut repl, &format!("open({:?}, 'w').write('x')", target.display().to_string()));
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    assert!(!target.exists());
    // Scratch itself is writable (the sandbox is not simply "deny everything").
    let r = run(&mut repl, "open('notes.txt', 'w').write('kept'); open('notes.txt').read()");
    assert_eq!(r.value.as_deref(), Some("'kept'"), "{r:#?}");
    assert_eq!(std::fs::read_to_string(repl.scratch().join("notes.txt")).unwrap(), "kept");
    assert_healthy(&mut repl);
}

#[test]
fn deleting_outside_scratch_is_denied() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("precious.txt");
    std::fs::write(&victim, "data").unwrap();
    let mut repl = repl();
    let code = format!(
        "import os, shutil\ntry:\n    os.remove({p:?})\nexcept PermissionError as e:\n    print('remove', type(e).__name__)\nshutil.rmtree({d:?})",
        p = victim.display().to_string(),
        d = outside.path().display().to_string()
    );
    let r = run(&mut repl, &code);
    assert_eq!(r.stdout, "remove PermissionError\n");
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "data");
    assert_healthy(&mut repl);
}

#[test]
fn the_analysed_folder_is_readable_but_not_deletable() {
    let folder = tempfile::tempdir().unwrap();
    let doc = folder.path().join("contract.txt");
    std::fs::write(&doc, "Termination: 30 days.").unwrap();
    let mut cfg = config();
    cfg.readable.push(folder.path().to_path_buf());
    let mut repl = repl_with(cfg);
    let p = doc.display().to_string();
    let r = run(&mut repl, &format!("open({p:?}).read()"));
    assert_eq!(r.value.as_deref(), Some("'Termination: 30 days.'"), "{r:#?}");
    let r = run(&mut repl, &format!("import os; os.remove({p:?})"));
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    let r = run(&mut repl, &format!("open({p:?}, 'a').write('x')"));
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    assert_eq!(std::fs::read_to_string(&doc).unwrap(), "Termination: 30 days.");
    assert_healthy(&mut repl);
}

#[test]
fn the_parents_environ_in_proc_is_unreadable_and_secrets_are_scrubbed() {
    // SAFETY: a test-only variable; nothing else in this process reads it concurrently.
    unsafe { std::env::set_var("QUARRY_TEST_API_KEY", "sk-secret") };
    let mut repl = repl();
    let r = run(&mut repl, "import os; open(f'/proc/{os.getppid()}/environ').read()");
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    let r = run(&mut repl, "import os; sorted(os.environ)");
    let names = r.value.unwrap();
    assert!(!names.contains("QUARRY_TEST_API_KEY"), "{names}");
    assert_eq!(names, "['HOME', 'LANG', 'LC_ALL', 'TMPDIR']");
    assert_healthy(&mut repl);
}

// --- network -----------------------------------------------------------------------------

#[test]
fn tcp_to_localhost_is_denied() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut repl = repl();
    let r = run(&mut repl, &format!("import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)"));
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "a connection reached the host");
    assert_healthy(&mut repl);
}

#[test]
fn dns_lookups_fail() {
    let mut repl = repl();
    let r = run(&mut repl, "import socket; socket.getaddrinfo('example.com', 443)");
    let e = error_of(&r);
    assert!(e.contains("gaierror") || e.contains("PermissionError"), "{r:#?}");
    let r = run(&mut repl, "import socket; socket.gethostbyname('localhost')");
    let e = error_of(&r);
    assert!(e.contains("gaierror") || e.contains("PermissionError"), "{r:#?}");
    assert_healthy(&mut repl);
}

#[test]
fn udp_is_denied() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    let mut repl = repl();
    let r = run(
        &mut repl,
        &format!("import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {port}))"),
    );
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    receiver.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    assert!(receiver.recv(&mut [0u8; 16]).is_err(), "a datagram reached the host");
    assert_healthy(&mut repl);
}

#[test]
fn unix_sockets_are_denied() {
    // Landlock does not mediate connect() on a pathname socket (think docker.sock), so socket()
    // itself must fail for every family.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let mut repl = repl();
    let r = run(
        &mut repl,
        &format!("import socket; s = socket.socket(socket.AF_UNIX); s.connect({:?})", path.display().to_string()),
    );
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "a connection reached the host");
    // socketpair stays available (asyncio needs it) and reaches nothing outside.
    let r = run(&mut repl, "import socket; a, b = socket.socketpair(); a.send(b'hi'); b.recv(2)");
    assert_eq!(r.value.as_deref(), Some("b'hi'"), "{r:#?}");
    assert_healthy(&mut repl);
}

// --- processes ---------------------------------------------------------------------------

#[test]
fn subprocess_run_is_denied() {
    let mut repl = repl();
    let r = run(&mut repl, "import subprocess; subprocess.run(['/bin/echo', 'hi'], capture_output=True)");
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    assert_healthy(&mut repl);
}

#[test]
fn os_fork_is_denied() {
    let mut repl = repl();
    let r = run(&mut repl, "import os; os.fork()");
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    assert_healthy(&mut repl);
}

#[test]
fn os_system_runs_nothing() {
    let mut repl = repl();
    let r = run(&mut repl, "import os; os.system('echo pwned > pwned.txt')");
    // system() could not create the shell: a non-zero status, and no file.
    assert_eq!(r.error, None, "{r:#?}");
    assert_ne!(r.value.as_deref(), Some("0"), "{r:#?}");
    assert!(!repl.scratch().join("pwned.txt").exists());
    assert_healthy(&mut repl);
}

#[test]
fn exec_is_denied() {
    let mut repl = repl();
    let r = run(&mut repl, "import os; os.execv('/bin/sh', ['sh', '-c', 'true'])");
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    assert_healthy(&mut repl);
}

#[test]
fn a_fork_bomb_goes_nowhere() {
    let mut repl = repl();
    let r = run(&mut repl, "import os\nn = 0\nwhile True:\n    os.fork()\n    n += 1");
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    let r = run(&mut repl, "n");
    assert_eq!(r.value.as_deref(), Some("0"));
    assert_healthy(&mut repl);
}

#[test]
fn a_thread_bomb_is_bounded() {
    let mut repl = repl();
    let code = "import threading, time\nn = 0\nwhile True:\n    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n    n += 1";
    let r = run(&mut repl, code);
    // RLIMIT_AS bounds the stacks the threads reserve; the execution ends with an error, not a
    // hung or dead worker.
    assert!(error_of(&r).contains("can't start new thread"), "{r:#?}");
    assert!(!r.restarted);
    let r = run(&mut repl, "n > 10");
    assert_eq!(r.value.as_deref(), Some("True"));
    assert_healthy(&mut repl);
}

#[test]
fn signalling_the_parent_is_denied() {
    let mut repl = repl();
    // If this got through, this test process would die on the spot.
    let r = run(&mut repl, "import os, signal; os.kill(os.getppid(), signal.SIGKILL)");
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    let r = run(&mut repl, "import os, signal; os.kill(0, signal.SIGKILL)");
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    let r = run(&mut repl, "import os, signal; os.kill(-1, signal.SIGKILL)");
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    assert_healthy(&mut repl);
}

#[test]
fn ptrace_of_the_parent_is_denied() {
    let mut repl = repl();
    let code = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nrc = libc.ptrace(16, os.getppid(), 0, 0)\n(rc, ctypes.get_errno())";
    let r = run(&mut repl, code);
    assert_eq!(r.error, None, "{r:#?}");
    assert_eq!(r.value, Some(format!("(-1, {})", libc::EPERM)), "{r:#?}");
    assert_healthy(&mut repl);
}

#[test]
fn limits_of_other_processes_cannot_be_changed() {
    let mut repl = repl();
    let r =
        run(&mut repl, "import os, resource; resource.prlimit(os.getppid(), resource.RLIMIT_AS, (1 << 20, 1 << 20))");
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
    // Nor can the worker lift its own hard limits.
    let r = run(&mut repl, "import resource; resource.setrlimit(resource.RLIMIT_AS, (-1, -1))");
    let e = error_of(&r);
    assert!(e.contains("ValueError") || e.contains("PermissionError"), "{r:#?}");
    assert_healthy(&mut repl);
}

// --- resources ---------------------------------------------------------------------------

#[test]
fn a_10_gib_allocation_fails_cleanly() {
    let mut repl = repl();
    run(&mut repl, "kept = 42");
    let r = run(&mut repl, "x = bytearray(10 * 2**30)");
    assert!(error_of(&r).contains("MemoryError"), "{r:#?}");
    assert!(!r.restarted);
    assert_eq!(run(&mut repl, "kept").value.as_deref(), Some("42"));
    assert_healthy(&mut repl);
}

#[test]
fn an_infinite_loop_is_interrupted_and_variables_survive() {
    let mut cfg = config();
    cfg.timeout = Duration::from_secs(1);
    let mut repl = repl_with(cfg);
    run(&mut repl, "kept = 'yes'");
    let r = run(&mut repl, "while True:\n    pass");
    let e = error_of(&r);
    assert!(e.starts_with("TimeoutError: the execution exceeded its 1 s time limit and was interrupted"), "{e}");
    assert!(!r.restarted);
    assert_eq!(run(&mut repl, "kept").value.as_deref(), Some("'yes'"));
    // `except Exception` does not swallow the interrupt.
    let r = run(&mut repl, "while True:\n    try:\n        pass\n    except Exception:\n        pass");
    assert!(error_of(&r).starts_with("TimeoutError"), "{r:#?}");
    assert_healthy(&mut repl);
}

#[test]
fn a_long_c_call_is_killed_and_the_worker_respawned() {
    let mut cfg = config();
    cfg.timeout = Duration::from_secs(1);
    cfg.grace = Duration::from_millis(500);
    let mut repl = repl_with(cfg);
    run(&mut repl, "lost = 1");
    let pid = repl.info().pid;
    let r = run(&mut repl, "sum(range(10**12))");
    let e = error_of(&r);
    assert!(e.contains("did not stop when interrupted"), "{e}");
    assert!(e.ends_with("The REPL was restarted; variables were lost."), "{e}");
    assert!(r.restarted);
    assert_ne!(repl.info().pid, pid, "a new worker");
    assert!(error_of(&run(&mut repl, "lost")).contains("NameError"));
    assert_healthy(&mut repl);
}

#[test]
fn unbounded_recursion_is_a_recursion_error() {
    let mut repl = repl();
    let r = run(&mut repl, "def f(n):\n    return f(n + 1)\nf(0)");
    let e = error_of(&r);
    assert!(e.contains("RecursionError"), "{e}");
    assert!(e.len() < 9000, "the repeated frames are collapsed and truncated: {} chars", e.len());
    assert!(!r.restarted);
    assert_healthy(&mut repl);
}

#[test]
fn a_ctypes_segfault_restarts_the_worker() {
    let mut repl = repl();
    let r = run(&mut repl, "import ctypes; ctypes.string_at(0)");
    let e = error_of(&r);
    assert!(e.contains("SIGSEGV"), "{e}");
    assert!(r.restarted);
    assert_healthy(&mut repl);
}

#[test]
fn sys_exit_does_not_end_the_repl() {
    let mut repl = repl();
    run(&mut repl, "kept = 1");
    let r = run(&mut repl, "import sys; sys.exit(0)");
    assert!(error_of(&r).starts_with("SystemExit: 0"), "{r:#?}");
    assert!(!r.restarted);
    assert_eq!(run(&mut repl, "kept").value.as_deref(), Some("1"));
    assert_healthy(&mut repl);
}

#[test]
fn os_exit_restarts_the_worker() {
    let mut repl = repl();
    let r = run(&mut repl, "import os; os._exit(3)");
    let e = error_of(&r);
    assert!(e.contains("exited with status 3"), "{e}");
    assert!(r.restarted);
    assert_healthy(&mut repl);
}

#[test]
fn printing_a_gigabyte_is_truncated() {
    let mut repl = repl();
    let r = run(&mut repl, "s = 'x' * (1 << 30)\nprint(s)\nprint('end')\ndel s");
    assert_eq!(r.error, None, "{r:#?}");
    assert!(r.stdout.len() < 8200, "{}", r.stdout.len());
    assert!(
        r.stdout.contains(&format!("[{} characters truncated]", (1usize << 30) + 5 - 8000)),
        "{}",
        &r.stdout[3900..4100]
    );
    assert!(r.stdout.ends_with("xxx\nend\n"));
    assert_healthy(&mut repl);
}

#[test]
fn writing_2_gb_in_scratch_stops_at_the_file_size_limit() {
    let mut repl = repl();
    let code =
        "chunk = b'x' * (1 << 20)\nwith open('big.bin', 'wb') as f:\n    for _ in range(2048):\n        f.write(chunk)";
    let r = run(&mut repl, code);
    assert!(error_of(&r).contains("File too large"), "{r:#?}");
    assert!(!r.restarted);
    let size = std::fs::metadata(repl.scratch().join("big.bin")).unwrap().len();
    assert!(size <= 1 << 30, "{size}");
    std::fs::remove_file(repl.scratch().join("big.bin")).unwrap();
    assert_healthy(&mut repl);
}

// --- the REPL's own names ----------------------------------------------------------------

#[test]
fn assigning_over_llm_query_does_not_break_it() {
    let mut repl = repl();
    let r = run(&mut repl, "llm_query = lambda p: 'hijacked'\nllm_query('a')");
    assert_eq!(r.value.as_deref(), Some("'hijacked'"), "inside the execution the assignment holds");
    let r = run(&mut repl, "del FINAL\nimport builtins\nbuiltins.print = None\ncontext = 'mine'");
    assert_eq!(r.error, None, "{r:#?}");
    let r = run(&mut repl, "print('ok'); FINAL(llm_query('a')); context");
    assert_eq!(r.stdout, "ok\n");
    assert_eq!(r.final_answer.as_deref(), Some("echo: a"));
    assert_eq!(r.value, None, "context is restored to None (no context loaded)");
    assert_healthy(&mut repl);
}

#[test]
fn writing_to_the_protocol_descriptors_cannot_forge_results() {
    let mut repl = repl();
    // fd 1 is /dev/null: C-level writes vanish.
    let r = run(&mut repl, "import os; os.write(1, b'{\"type\":\"result\",\"id\":999}\\n')");
    assert_eq!(r.error, None, "{r:#?}");
    // Garbage on the real protocol pipe is a protocol violation: the worker is replaced.
    let r = run(&mut repl, "import os\nfor fd in range(100, 110):\n    try:\n        os.write(fd, b'garbage\\n')\n    except OSError:\n        pass");
    assert!(r.restarted, "{r:#?}");
    assert!(error_of(&r).contains("broke the protocol"), "{r:#?}");
    assert_healthy(&mut repl);
}

// --- refusing to run unconfined ----------------------------------------------------------

#[test]
fn a_missing_mechanism_is_refused_and_named() {
    let mut cfg = config();
    cfg.pretend_unavailable = vec!["landlock".into()];
    let err = match quarry_repl::Repl::new(cfg.clone(), crate::common::echo_host()) {
        Ok(_) => panic!("started without Landlock"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("refused") && err.contains("landlock"), "{err}");

    // Unconfined mode, explicitly chosen: starts, and says what is missing.
    cfg.allow_unconfined = true;
    let mut repl = repl_with(cfg);
    assert!(repl.info().missing.iter().any(|m| m.starts_with("landlock")), "{:?}", repl.info());
    assert!(repl.info().active.iter().any(|m| m == "seccomp"));
    // Without Landlock, files outside are readable: the mode is what it says.
    let r = run(&mut repl, "len(open('/etc/passwd').read()) > 0");
    assert_eq!(r.value.as_deref(), Some("True"), "{r:#?}");
}

#[test]
fn the_sandbox_reports_every_mechanism_on_this_machine() {
    let repl = repl();
    let active = &repl.info().active;
    for m in ["network-namespace", "rlimits", "landlock", "seccomp"] {
        assert!(active.iter().any(|a| a == m), "{m} missing from {active:?}");
    }
    assert!(repl.info().missing.is_empty());
}
