//! `quarry-repl`: the sandboxed Python REPL in which a root model's code runs over the user's
//! documents.
//!
//! Model-written code is untrusted — a prompt injection in a contract can ask for
//! `os.system("rm -rf ~")` — so it never runs in the host process. [`Repl`] starts a worker
//! (`quarry worker repl`, the same executable; its code is the `quarry-repl-worker` crate) that
//! embeds CPython through pyo3, confines itself (Landlock, seccomp, a network namespace,
//! rlimits) and speaks the
//! JSON-lines [`protocol`] on its stdin/stdout. The host can always stop it: an execution that
//! runs past its time limit is interrupted inside the interpreter, and killed and respawned if a C
//! call holding the GIL ignores that.
//!
//! The pieces:
//! - [`Environment`]: what the RLM loop uses — `load_context`, then `execute(code)` returning a
//!   [`ReplResult`] (stdout, stderr, error, trailing value, duration, variables, final answer).
//! - [`HostFunctions`]: what `llm_query`, `llm_query_batched`, `rlm_query`, `grep`, `search`,
//!   `read` and `files` do when Python calls them; each call is a request to the host.
//! - [`Context`]: the documents, handed over as a file the worker maps (100 MB in well under a
//!   second), bound to `context` in Python.
//! - `chunks(x, max_chars=8000, overlap=0)`, answered in the worker: cuts a `str`, a document or
//!   `context` at line ends into `Chunk`s, strings that also carry `.path`, `.line_start`,
//!   `.line_end` and `.source` (`"path:start-end"`). When a prompt given to `llm_query` or
//!   `llm_query_batched` contains chunks, the host hears which lines first, as [`Source`]s
//!   ([`HostFunctions::note_sources`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use quarry_repl::{Context, EchoHost, Environment, Repl, SandboxConfig};
//!
//! # fn main() -> quarry_repl::Result<()> {
//! let mut repl = Repl::new(SandboxConfig::default(), Arc::new(EchoHost::default()))?;
//! repl.load_context(&Context::Text("The term is 30 days.".into()))?;
//! let r = repl.execute("n = context.count('days')\nllm_query(f'found {n}')")?;
//! assert_eq!(r.value.as_deref(), Some("'echo: found 1'"));
//! let r = repl.execute("open('/etc/passwd').read()")?;
//! assert!(r.error.unwrap().contains("PermissionError"));
//! # Ok(())
//! # }
//! ```
//!
//! This crate is the host side only and links no Python: the RLM loop and the desktop use it,
//! and only `quarry` links the worker.

mod client;
mod context;
mod error;
pub mod host;
pub mod protocol;

pub use client::{Environment, Repl, SandboxConfig, WorkerCommand, WorkerInfo};
pub use context::{Context, ContextDocument, PageMark};
pub use error::{Error, Result};
pub use host::{DocumentsHost, EchoHost, HostFunctions, HostResult, NoHost};
pub use protocol::{ContextInfo, Limits, PageRef, ReplResult, Source, Variable};
