//! Shared by the REPL's integration tests: a REPL on the real worker binary, and the health
//! check every hostile case ends with.
use std::sync::Arc;
use std::time::Duration;

use quarry_repl::{EchoHost, Environment, Repl, ReplResult, SandboxConfig, WorkerCommand};

/// The worker binary of this package, built by cargo for these tests: the same code as
/// `quarry worker repl`.
pub fn worker() -> WorkerCommand {
    WorkerCommand { program: env!("CARGO_BIN_EXE_quarry-repl-worker").into(), args: vec![] }
}

/// Default limits, except a shorter wall clock so runaway cases finish quickly; generous enough
/// for a loaded 2-core machine running tests in parallel.
pub fn config() -> SandboxConfig {
    SandboxConfig {
        worker: worker(),
        timeout: Duration::from_secs(20),
        grace: Duration::from_secs(2),
        ..Default::default()
    }
}

pub fn echo_host() -> Arc<EchoHost> {
    Arc::new(EchoHost {
        documents: quarry_repl::DocumentsHost {
            documents: vec![
                ("a.txt".into(), "alpha\nthe notice period is 30 days\nomega".into()),
                ("dir/b.md".into(), "# B\nNotice: 90 days".into()),
            ],
        },
        delay: Duration::ZERO,
    })
}

pub fn repl_with(config: SandboxConfig) -> Repl {
    Repl::new(config, echo_host()).expect("the sandboxed REPL starts on this machine")
}

pub fn repl() -> Repl {
    repl_with(config())
}

pub fn run(repl: &mut Repl, code: &str) -> ReplResult {
    repl.execute(code).unwrap_or_else(|e| panic!("the REPL itself failed on {code:?}: {e}"))
}

/// The error text, or a panic showing the whole result when there is none.
pub fn error_of(r: &ReplResult) -> &str {
    r.error.as_deref().unwrap_or_else(|| panic!("expected an error, got {r:#?}"))
}

/// After a hostile case: the host is fine (we are running), the worker answers, arithmetic and a
/// host call work, and the sandbox is still in force.
pub fn assert_healthy(repl: &mut Repl) {
    let r = run(repl, "1 + 1");
    assert_eq!(r.error, None, "{r:#?}");
    assert_eq!(r.value.as_deref(), Some("2"));
    let r = run(repl, "llm_query('ping')");
    assert_eq!(r.value.as_deref(), Some("'echo: ping'"), "{r:#?}");
    let r = run(repl, "open('/etc/passwd').read()");
    assert!(error_of(&r).contains("PermissionError"), "{r:#?}");
}
