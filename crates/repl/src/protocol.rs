//! The wire format between the host and the worker: JSON lines, one message per line.
//!
//! The host writes [`HostMessage`]s to the worker's stdin; the worker writes [`WorkerMessage`]s
//! to the pipe that was its stdout when it started (it moves that pipe to a high descriptor and
//! points fd 1 at `/dev/null`, so `print` and `os.write(1, ..)` in user code cannot corrupt it).
//!
//! A session: the host sends [`HostMessage::Start`] (the sandbox to build); the worker confines
//! itself and answers [`WorkerMessage::Ready`] (or [`WorkerMessage::Refused`] and exits). Then the
//! host sends `execute`/`load_context` one at a time; while an execution runs, the worker may send
//! any number of [`WorkerMessage::Call`]s (host functions such as `llm_query`, possibly several at
//! once from Python threads), each answered by one [`HostMessage::Reply`] with the same id. The
//! worker exits when its stdin closes.
//!
//! Every message from the worker is untrusted: user code can write to any descriptor it can
//! find, so the host validates each line and bounds its length ([`MAX_LINE_BYTES`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Bumped whenever a message changes shape; the worker refuses a `start` with another version,
/// which catches a stale `quarry` binary serving as the worker of a newer host.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest line the host accepts from a worker. Results are truncated in the worker long
/// before this; only a hostile or broken worker gets near it, and it is then killed.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// Host to worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostMessage {
    /// The first line: the sandbox the worker must build before it runs anything.
    Start { protocol: u32, config: WorkerConfig },
    /// Run one block of code in the persistent namespace.
    Execute { id: u64, code: String },
    /// Map a context file written by the host and bind it to `context`.
    LoadContext { id: u64, context: ContextFile },
    /// The execution `id` ran out of time: raise in the interpreter if it is still running.
    Interrupt { id: u64 },
    /// The answer to the worker's [`WorkerMessage::Call`] with the same id.
    Reply {
        id: u64,
        #[serde(flatten)]
        outcome: CallOutcome,
    },
}

/// The answer to a host call: a JSON value, or an error that Python raises as `HostError`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    Value(serde_json::Value),
    Error(String),
}

/// Worker to host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// Confined and ready for code.
    Ready {
        protocol: u32,
        /// `sys.version` of the embedded interpreter.
        python: String,
        pid: u32,
        /// The confinement mechanisms in force, e.g. `landlock`, `seccomp`, `network-namespace`.
        active: Vec<String>,
        /// Mechanisms the kernel lacked; non-empty only when the host allowed unconfined mode.
        missing: Vec<String>,
    },
    /// The worker could not build the sandbox it was asked for and will not run code.
    Refused {
        message: String,
    },
    Result {
        id: u64,
        result: ReplResult,
    },
    ContextLoaded {
        id: u64,
        #[serde(flatten)]
        outcome: ContextOutcome,
    },
    /// A host function called from Python.
    Call {
        id: u64,
        call: HostCall,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ContextOutcome {
    Info(ContextInfo),
    Error(String),
}

/// A host function called from Python, with its arguments as Python passed them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "function", rename_all = "snake_case")]
pub enum HostCall {
    LlmQuery {
        prompt: String,
        #[serde(default)]
        model: Option<String>,
        /// The chunks (from `chunks()`) whose text the prompt contains; absent when none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        sources: Vec<Source>,
    },
    LlmQueryBatched {
        prompts: Vec<String>,
        #[serde(default)]
        model: Option<String>,
        /// Per prompt, in prompt order, a GBNF grammar its answer must follow (`llm_classify`
        /// sends them); hosts whose sub model takes no grammars ignore them. Absent when none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        grammars: Vec<String>,
        /// Per prompt, in prompt order, the chunks its text contains; absent when no prompt
        /// contains any.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        sources: Vec<Vec<Source>>,
    },
    /// How likely each candidate is as the sub model's reply to each prompt (`llm_classify`
    /// labels by likelihood through it).
    LlmScore {
        prompts: Vec<String>,
        candidates: Vec<String>,
        #[serde(default)]
        model: Option<String>,
    },
    RlmQuery {
        prompt: String,
        /// Whatever Python passed, converted to JSON (`str()` of it when it is not JSON-able).
        #[serde(default)]
        context: Option<serde_json::Value>,
    },
    Grep {
        pattern: String,
        /// Only files whose path matches this glob.
        #[serde(default)]
        glob: Option<String>,
        #[serde(default)]
        ignore_case: bool,
        #[serde(default = "default_max_results")]
        max_results: usize,
    },
    Search {
        query: String,
        #[serde(default = "default_k")]
        k: usize,
    },
    Read {
        path: String,
        #[serde(default)]
        start: Option<usize>,
        #[serde(default)]
        end: Option<usize>,
        /// One page of a paged document (a PDF's page, a slide, a sheet); `start`/`end` then
        /// count lines within it.
        #[serde(default)]
        page: Option<PageRef>,
    },
    Files {
        #[serde(default = "default_glob")]
        glob: String,
    },
}

/// A page as the model names it: its physical number (`read(path, page=12)`, what grep hits
/// call `page`) or its label (`page="iv"`, a sheet's name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PageRef {
    Number(u32),
    Label(String),
}

impl std::fmt::Display for PageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageRef::Number(n) => write!(f, "{n}"),
            PageRef::Label(l) => write!(f, "{l:?}"),
        }
    }
}

/// Where a piece of a prompt came from: lines `line_start..=line_end` (1-based, inclusive) of
/// the document `path`, as `chunks()` cut them in the worker.
///
/// Reported by the sandboxed worker, so a claim, not a proof: model code can build a prompt that
/// names any lines. Good for showing which parts of the documents sub-calls read; check a citation
/// against the document itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    pub path: String,
    pub line_start: usize,
    pub line_end: usize,
}

fn default_max_results() -> usize {
    100
}
fn default_k() -> usize {
    10
}
fn default_glob() -> String {
    "*".into()
}

/// What one execution produced. Every text field is already truncated to the output budget.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReplResult {
    pub stdout: String,
    pub stderr: String,
    /// The exception (syntax error, traceback trimmed to the user's code, timeout, crash).
    pub error: Option<String>,
    /// `repr()` of the trailing expression, as a notebook shows it; `None` when there was no
    /// trailing expression or it evaluated to `None`.
    pub value: Option<String>,
    #[serde(with = "duration_secs")]
    pub duration: Duration,
    /// The user's variables after the execution.
    pub variables: Vec<Variable>,
    /// Set by `FINAL(answer)` or `FINAL_VAR(name)`.
    pub final_answer: Option<String>,
    /// The worker was killed and started again: every variable is gone (the context is
    /// reloaded). The host sets this; `error` says why.
    #[serde(default)]
    pub restarted: bool,
    /// Where `error` says what to change, that sentence: the REPL's own hints (a record field
    /// that does not exist, a document used as a line), Python's "Did you mean ...?", or
    /// `strptime`'s "does not match format". The worker sets it, so a host acting on it (the
    /// RLM's one-edit repair) does not have to match the harness's wording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// One name in the namespace, described without printing its value (which may be 100 MB).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Variable {
    pub name: String,
    /// The Python type name, e.g. `list`, `dict`, `str`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// `len()` when the value has one.
    pub len: Option<u64>,
}

/// The sandbox and limits the worker applies to itself (sent in [`HostMessage::Start`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerConfig {
    /// Read-write, and the working directory.
    pub scratch: PathBuf,
    /// Read-only: the context files and the folder being analysed.
    pub readable: Vec<PathBuf>,
    pub limits: Limits,
    /// Characters kept of each of stdout, stderr, error and value (head + tail).
    pub output_budget: usize,
    /// Run even if the kernel lacks a confinement mechanism (the missing ones are reported).
    pub allow_unconfined: bool,
    /// Mechanisms to treat as missing, so tests can exercise the refusal path on a kernel that
    /// has everything. Not a way to weaken the sandbox quietly: a listed mechanism still causes
    /// a refusal unless `allow_unconfined` is set too.
    #[serde(default)]
    pub pretend_unavailable: Vec<String>,
}

/// Resource limits applied with `setrlimit` in the worker.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    /// RLIMIT_AS: address space, which also bounds how many threads can exist (each reserves a
    /// stack).
    pub memory_bytes: u64,
    /// RLIMIT_CPU, re-armed before each execution (so a long session is not killed by the sum
    /// of many short executions).
    pub cpu_seconds: u64,
    /// RLIMIT_FSIZE: the largest file the worker can write.
    pub file_size_bytes: u64,
    /// RLIMIT_NOFILE.
    pub open_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: 4 << 30, cpu_seconds: 120, file_size_bytes: 1 << 30, open_files: 256 }
    }
}

/// A context written to a file by the host for the worker to map.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ContextFile {
    /// One UTF-8 text; `context` is a `str`.
    Text { path: PathBuf },
    /// Concatenated UTF-8 texts plus an index of `(path, start, end)` byte ranges; `context` is a
    /// lazy sequence of documents.
    Documents { data: PathBuf, index: PathBuf },
}

/// What the worker bound to `context`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContextInfo {
    /// `str` or `documents`.
    pub kind: String,
    pub documents: usize,
    /// Characters of text (for documents, counted lazily: bytes until a text is decoded).
    pub chars: u64,
}

mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_round_trips_with_flattened_outcome() {
        let msg = HostMessage::Reply { id: 7, outcome: CallOutcome::Value(serde_json::json!("hi")) };
        let line = serde_json::to_string(&msg).unwrap();
        assert_eq!(line, r#"{"type":"reply","id":7,"value":"hi"}"#);
        let back: HostMessage = serde_json::from_str(r#"{"type":"reply","id":7,"error":"no"}"#).unwrap();
        assert!(matches!(back, HostMessage::Reply { id: 7, outcome: CallOutcome::Error(e) } if e == "no"));
    }

    #[test]
    fn host_call_defaults_fill_missing_arguments() {
        let call: HostCall = serde_json::from_str(r#"{"function":"search","query":"x"}"#).unwrap();
        assert_eq!(call, HostCall::Search { query: "x".into(), k: 10 });
        let call: HostCall = serde_json::from_str(r#"{"function":"files"}"#).unwrap();
        assert_eq!(call, HostCall::Files { glob: "*".into() });
    }

    #[test]
    fn sources_are_optional_on_the_wire() {
        let call: HostCall = serde_json::from_str(r#"{"function":"llm_query","prompt":"p"}"#).unwrap();
        assert_eq!(call, HostCall::LlmQuery { prompt: "p".into(), model: None, sources: vec![] });
        assert_eq!(serde_json::to_string(&call).unwrap(), r#"{"function":"llm_query","prompt":"p","model":null}"#);
        let line = r#"{"function":"llm_query_batched","prompts":["a","b"],"sources":[[],[{"path":"x.md","line_start":3,"line_end":9}]]}"#;
        let call: HostCall = serde_json::from_str(line).unwrap();
        let source = Source { path: "x.md".into(), line_start: 3, line_end: 9 };
        assert_eq!(
            call,
            HostCall::LlmQueryBatched {
                prompts: vec!["a".into(), "b".into()],
                model: None,
                grammars: vec![],
                sources: vec![vec![], vec![source]]
            }
        );
    }

    #[test]
    fn result_duration_is_seconds() {
        let r = ReplResult { duration: Duration::from_millis(1500), ..Default::default() };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["duration"], serde_json::json!(1.5));
        let back: ReplResult = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
