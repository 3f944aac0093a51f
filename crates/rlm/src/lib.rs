//! `quarry-rlm`: how Quarry answers a question about a folder.
//!
//! Two modes:
//!
//! - the **Recursive Language Model** loop ([`Rlm`], arXiv 2512.24601): the root model sees only
//!   the folder's shape ([`context`]) and the question, writes Python that runs in the sandboxed
//!   REPL over the documents (`grep`, `read`, `context`, `llm_query` on pieces), sees truncated
//!   output, and repeats until it writes `FINAL(answer)` ([`parse`]) or a [`Budget`] limit stops
//!   it; every step is an [`Event`] and the whole run a [`Trajectory`];
//! - the **direct** baseline ([`direct`]): the whole folder in the window, one pass — what the
//!   loop must beat;
//! - the **rag** baseline ([`rag`]): the BM25-best passages in the window, one pass.
//!
//! [`Analyst`] runs any of them and returns one [`Answer`] shape, with the answer's citations
//! read and verified against the folder ([`cite`]). A [`Recorder`] writes a run's events and
//! answer to the history as they happen.
//!
//! ```no_run
//! use std::sync::Arc;
//! use quarry_llm::{LocalServer, ServerOptions};
//! use quarry_rlm::{CancelToken, Rlm, RlmConfig};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let folder = quarry_index::Folder::load("assets/demo".as_ref())?;
//! let id = "qwen2.5-coder-0.5b-instruct-q4_k_m";
//! let server = LocalServer::start(ServerOptions::new(vec![id.into()])).await?;
//! let model = Arc::new(server.model(id));
//! let rlm = Rlm::new(model.clone(), model, RlmConfig::default());
//! let cancel = CancelToken::default();
//! let run = rlm.run(&folder, "What is the notice period?", cancel, |event| println!("{event:?}")).await?;
//! println!("{:?} ({:?})", run.answer, run.stop_reason);
//! # Ok(())
//! # }
//! ```

pub mod analyst;
pub mod budget;
pub mod cite;
pub mod context;
pub mod corpus_host;
pub mod direct;
pub mod evidence;
pub mod host;
pub mod models;
pub mod parse;
pub mod question;
pub mod rag;
pub mod record;
pub mod repl_thread;
pub mod rlm;
pub mod trajectory;

pub use analyst::{Analyst, AnalystConfig, Answer, Mode};
pub use budget::{Budget, StopReason};
pub use cite::{cite, cite_with_sources, Check, Citation, Status as CitationStatus};
pub use context::{page_marks, FolderSummary};
pub use corpus_host::CorpusHost;
pub use host::Labeller;
pub use models::{ModelChoice, Models};
pub use parse::{parse_reply, CodeBlock, FinalAnswer, Reply};
/// Stops a run at its next step; the same token cancels a model download.
pub use quarry_models::CancelToken;
pub use record::Recorder;
pub use rlm::{judge_records_grammar, Rlm, RlmConfig, RunResult, JUDGE_GRAMMAR, JUDGE_RECORDS_GRAMMAR};
pub use trajectory::{AnswerSource, BlockRun, Event, Iteration, Trajectory};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Model(#[from] quarry_llm::Error),
    #[error(transparent)]
    ModelFile(#[from] quarry_models::Error),
    #[error(transparent)]
    Corpus(#[from] quarry_index::Error),
    #[error(transparent)]
    Repl(#[from] quarry_repl::Error),
    #[error("the REPL's thread failed: {0}")]
    Worker(String),
    #[error("the question is empty; ask something about the folder")]
    EmptyQuestion,
    #[error("a {window}-token window is too small for the question and a {answer}-token answer")]
    WindowTooSmall { window: usize, answer: usize },
}
