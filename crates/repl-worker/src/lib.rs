//! `quarry-repl-worker`: the REPL's worker process. CPython embedded through pyo3, confined by
//! [`sandbox`], speaking quarry-repl's [`protocol`](quarry_repl::protocol) on its original
//! stdin/stdout, and running the harness (`quarry_harness/`, Python) the model's code calls.
//!
//! Threads: the main thread owns the interpreter's main thread state and runs executions one at
//! a time; a reader thread reads the host's lines, routes replies to the Python threads waiting
//! in host calls, and delivers interrupts. An interrupt needs the GIL: while Python runs bytecode
//! it gets it within the switch interval and raises [`ExecutionTimeout`] in the main thread with
//! `PyThreadState_SetAsyncExc`; while a C call holds the GIL it never does, and the host's
//! SIGKILL after the grace period is what ends it.
//!
//! [`ExecutionTimeout`]: https://docs.python.org/3/c-api/init.html#c.PyThreadState_SetAsyncExc

pub mod sandbox;

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyModule;

use quarry_repl::protocol::{
    CallOutcome, ContextFile, HostCall, HostMessage, ReplResult, WorkerMessage, PROTOCOL_VERSION,
};

/// The harness package, `quarry_harness/`, in import order: each module imports only those
/// before it, and `core`, the one Rust calls (`init`, `execute`, `load_context`), comes last.
/// All of it is in the binary: the confined worker reads no source files. It is split by job
/// (issue 16.8) so that pytest tests its pure helpers (crates/repl-worker/tests/harness/).
const HARNESS: [(&str, &str); 13] = [
    ("__init__", include_str!("quarry_harness/__init__.py")),
    ("errors", include_str!("quarry_harness/errors.py")),
    ("state", include_str!("quarry_harness/state.py")),
    ("capture", include_str!("quarry_harness/capture.py")),
    ("chunk", include_str!("quarry_harness/chunk.py")),
    ("provenance", include_str!("quarry_harness/provenance.py")),
    ("host", include_str!("quarry_harness/host.py")),
    ("documents", include_str!("quarry_harness/documents.py")),
    ("records", include_str!("quarry_harness/records.py")),
    ("classify", include_str!("quarry_harness/classify.py")),
    ("strategies", include_str!("quarry_harness/strategies.py")),
    ("pysource", include_str!("quarry_harness/pysource.py")),
    ("core", include_str!("quarry_harness/core.py")),
];

/// Loads the harness modules into `sys.modules` in order (each submodule also becomes an
/// attribute of the package, as an import would make it) and returns `core`.
fn load_harness(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let c_string = |s: String| CString::new(s).map_err(|e| PyValueError::new_err(format!("harness source: {e}")));
    let mut package: Option<Bound<'_, PyModule>> = None;
    let mut last = None;
    for (name, source) in HARNESS {
        let qualified =
            if name == "__init__" { "quarry_harness".to_string() } else { format!("quarry_harness.{name}") };
        let file = c_string(format!("<quarry_harness/{name}.py>"))?;
        let module = PyModule::from_code(py, &c_string(source.to_string())?, &file, &c_string(qualified)?)?;
        match &package {
            Some(p) => p.setattr(name, &module)?,
            None => package = Some(module.clone()),
        }
        last = Some(module);
    }
    last.ok_or_else(|| PyValueError::new_err("the harness has no modules"))
}

/// State shared by the main thread, the reader thread and Python threads in host calls.
struct Shared {
    out: Mutex<File>,
    pending: Mutex<HashMap<u64, mpsc::Sender<CallOutcome>>>,
    next_call: AtomicU64,
    /// The id of the running execution, 0 when idle. Read and written with the GIL held, which
    /// is what makes "still running?" and "raise now" one step for the interrupter.
    current: AtomicU64,
    main_ident: std::ffi::c_long,
    timeout_exc: Py<PyAny>,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// The worker's entry point (`quarry worker repl`, `quarry-repl-worker`). Never returns: the
/// process ends with `_exit` so no interpreter finalisation (which model-started threads could
/// block) and no model-registered `atexit` handler runs.
pub fn main() -> ! {
    let code = match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("quarry worker repl: {e}");
            2
        }
    };
    unsafe { libc::_exit(code) }
}

fn send_line(out: &Mutex<File>, line: &str) -> std::io::Result<()> {
    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    out.write_all(&buf)
}

fn send(out: &Mutex<File>, msg: &WorkerMessage) -> std::io::Result<()> {
    send_line(out, &serde_json::to_string(msg).expect("messages serialize"))
}

enum Work {
    Execute { id: u64, code: String },
    LoadContext { id: u64, context: ContextFile },
}

fn run() -> Result<(), String> {
    // The worker must not outlive its host, whatever the host dies of.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if unsafe { libc::getppid() } == 1 {
        return Err("the host is already gone".into());
    }
    let (input, output) = sandbox::take_protocol_fds().map_err(|e| format!("protocol descriptors: {e}"))?;
    let out = Mutex::new(output);
    let mut reader = BufReader::new(input);

    let mut first = String::new();
    reader.read_line(&mut first).map_err(|e| format!("reading the start message: {e}"))?;
    if first.is_empty() {
        return Ok(()); // stdin closed before anything was asked
    }
    let config = match serde_json::from_str::<HostMessage>(&first) {
        Ok(HostMessage::Start { protocol, config }) if protocol == PROTOCOL_VERSION => config,
        Ok(HostMessage::Start { protocol, .. }) => {
            let message = format!("protocol version {protocol} requested, this worker speaks {PROTOCOL_VERSION}");
            let _ = send(&out, &WorkerMessage::Refused { message: message.clone() });
            return Err(message);
        }
        _ => return Err(format!("expected a start message, got {:?}", first.trim_end())),
    };

    init_interpreter()?;
    let (harness, init) = Python::attach(|py| -> PyResult<_> {
        let harness = load_harness(py)?;
        let host_call = wrap_pyfunction!(host_call, py)?;
        let init: String = harness.getattr("init")?.call1((host_call, config.output_budget))?.extract()?;
        let timeout_exc = py.import("quarry_harness.errors")?.getattr("ExecutionTimeout")?.unbind();
        Ok((harness.unbind(), (init, timeout_exc)))
    })
    .map_err(|e| format!("starting the harness: {e}"))?;
    let (init, timeout_exc) = init;
    #[derive(serde::Deserialize)]
    struct Init {
        main_ident: u64,
        python: String,
        paths: Vec<PathBuf>,
    }
    let init: Init = serde_json::from_str(&init).map_err(|e| format!("harness init: {e}"))?;

    let confinement = match sandbox::confine(&config, &init.paths) {
        Ok(c) => c,
        Err(message) => {
            let _ = send(&out, &WorkerMessage::Refused { message: message.clone() });
            return Err(message);
        }
    };
    std::env::set_current_dir(&config.scratch).map_err(|e| format!("entering the scratch directory: {e}"))?;

    let shared = SHARED.get_or_init(|| Shared {
        out,
        pending: Mutex::new(HashMap::new()),
        next_call: AtomicU64::new(1),
        current: AtomicU64::new(0),
        main_ident: init.main_ident as std::ffi::c_long,
        timeout_exc,
    });

    // Only now, after unshare() needed a single-threaded process, may threads exist.
    let (work_tx, work_rx) = mpsc::channel::<Work>();
    std::thread::Builder::new()
        .name("protocol-reader".into())
        .spawn(move || read_host(reader, work_tx))
        .map_err(|e| format!("starting the reader thread: {e}"))?;

    send(
        &shared.out,
        &WorkerMessage::Ready {
            protocol: PROTOCOL_VERSION,
            python: init.python,
            pid: std::process::id(),
            active: confinement.active,
            missing: confinement.missing,
        },
    )
    .map_err(|e| format!("announcing readiness: {e}"))?;

    // Ends when the reader thread drops the sender: the host closed stdin.
    for work in work_rx {
        match work {
            Work::Execute { id, code } => {
                sandbox::rearm_cpu_limit(config.limits.cpu_seconds);
                let raw = Python::attach(|py| {
                    shared.current.store(id, Ordering::SeqCst);
                    let r =
                        harness.bind(py).getattr("execute").and_then(|f| f.call1((code,))).and_then(|v| v.extract());
                    shared.current.store(0, Ordering::SeqCst);
                    // An interrupt that landed after the user's code ended must not fire in the
                    // next execution.
                    unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(shared.main_ident as _, std::ptr::null_mut()) };
                    r.unwrap_or_else(|e: PyErr| {
                        let result = ReplResult { error: Some(e.to_string()), ..Default::default() };
                        serde_json::to_string(&result).expect("results serialize")
                    })
                });
                let line = format!(r#"{{"type":"result","id":{id},"result":{raw}}}"#);
                if send_line(&shared.out, &line).is_err() {
                    break;
                }
            }
            Work::LoadContext { id, context } => {
                let spec = serde_json::to_string(&context).expect("context specs serialize");
                let r: Result<String, String> = Python::attach(|py| {
                    harness
                        .bind(py)
                        .getattr("load_context")
                        .and_then(|f| f.call1((spec,)))
                        .and_then(|v| v.extract())
                        .map_err(|e| e.to_string())
                });
                let line = match r {
                    Ok(info) => format!(r#"{{"type":"context_loaded","id":{id},"info":{info}}}"#),
                    Err(e) => {
                        serde_json::to_string(&serde_json::json!({"type": "context_loaded", "id": id, "error": e}))
                            .expect("json")
                    }
                };
                if send_line(&shared.out, &line).is_err() {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Initialises CPython in isolated mode (no user site directory, no `PYTHON*` environment
/// variables, no bytecode writing) and releases the GIL for [`Python::attach`].
fn init_interpreter() -> Result<(), String> {
    use pyo3::ffi;
    unsafe {
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::uninit();
        ffi::PyConfig_InitIsolatedConfig(config.as_mut_ptr());
        let mut config = config.assume_init();
        config.write_bytecode = 0;
        // CPython's own handlers: SIGINT -> KeyboardInterrupt, SIGPIPE/SIGXFSZ ignored.
        config.install_signal_handlers = 1;
        let status = ffi::Py_InitializeFromConfig(&config);
        ffi::PyConfig_Clear(&mut config);
        if ffi::PyStatus_Exception(status) != 0 {
            let msg = if status.err_msg.is_null() {
                "unknown error".to_string()
            } else {
                CStr::from_ptr(status.err_msg).to_string_lossy().into_owned()
            };
            return Err(format!("Python did not start: {msg}"));
        }
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

/// `_host_call(request_json) -> reply_json`, the one door from Python to the host. Releases the
/// GIL while it waits, so other Python threads (a `ThreadPoolExecutor` of `llm_query`s) run and
/// their calls overlap on the host.
#[pyfunction]
fn host_call(py: Python<'_>, request: &str) -> PyResult<String> {
    // Re-serialised from the typed call, never forwarded raw: the request is model-reachable.
    let call: HostCall = serde_json::from_str(request)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("invalid host call: {e}")))?;
    let shared = SHARED.get().ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("the REPL is not ready"))?;
    let id = shared.next_call.fetch_add(1, Ordering::Relaxed);
    let line = serde_json::to_string(&WorkerMessage::Call { id, call }).expect("calls serialize");
    let (tx, rx) = mpsc::channel();
    shared.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
    let outcome = py.detach(move || {
        send_line(&shared.out, &line).ok()?;
        rx.recv().ok()
    });
    let reply = match outcome {
        Some(CallOutcome::Value(v)) => serde_json::json!({ "value": v }),
        Some(CallOutcome::Error(e)) => serde_json::json!({ "error": e }),
        None => serde_json::json!({ "error": "the host went away" }),
    };
    Ok(reply.to_string())
}

fn read_host(mut reader: BufReader<File>, work: mpsc::Sender<Work>) {
    let shared = SHARED.get().expect("shared state is set before the reader starts");
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let msg = match serde_json::from_str::<HostMessage>(&line) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("ignoring a malformed host line: {e}");
                continue;
            }
        };
        match msg {
            HostMessage::Execute { id, code } => {
                let _ = work.send(Work::Execute { id, code });
            }
            HostMessage::LoadContext { id, context } => {
                let _ = work.send(Work::LoadContext { id, context });
            }
            HostMessage::Reply { id, outcome } => {
                if let Some(tx) = shared.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id) {
                    let _ = tx.send(outcome);
                }
            }
            HostMessage::Interrupt { id } => {
                // Its own thread: acquiring the GIL can take forever (a C loop holds it), and
                // replies must keep flowing meanwhile.
                let _ = std::thread::Builder::new().name("interrupt".into()).spawn(move || interrupt(id));
            }
            HostMessage::Start { .. } => tracing::warn!("ignoring a second start message"),
        }
    }
    // Host gone: wake every Python thread waiting for a reply, and end the main loop.
    shared.pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
    drop(work);
}

fn interrupt(id: u64) {
    let shared = SHARED.get().expect("shared state is set before interrupts");
    Python::attach(|py| {
        if shared.current.load(Ordering::SeqCst) == id {
            unsafe {
                pyo3::ffi::PyThreadState_SetAsyncExc(shared.main_ident as _, shared.timeout_exc.bind(py).as_ptr());
            }
        }
    });
}
