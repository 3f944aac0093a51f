//! `quarry-llm`: how Quarry talks to language models — one protocol, whatever serves them.
//!
//! - [`api`]: the [`LanguageModel`] trait and its requests and results, in OpenAI's shape, and
//!   [`Tokens`] for sizing prompts;
//! - [`openai`]: the OpenAI-compatible HTTP client, Quarry's main [`LanguageModel`];
//! - [`supervise`]: the local engine (`quarry serve`, in `quarry-engine`) as a supervised child
//!   process, restarted if llama.cpp aborts;
//! - [`tokenizer`]: token counts and chat prompts from the serving engine;
//! - [`logging`]: the log set-up both binaries share.
//!
//! Nothing here links llama.cpp: the engine runs in its own process, so a window or a CLI that
//! uses this crate survives whatever llama.cpp does.
//!
//! ```no_run
//! use quarry_llm::{ChatMessage, ChatRequest, LanguageModel, LocalServer, ServerOptions};
//!
//! # async fn run() -> quarry_llm::Result<()> {
//! let server = LocalServer::start(ServerOptions::new(vec!["qwen2.5-coder-0.5b-instruct-q4_k_m".into()])).await?;
//! let model = server.model("qwen2.5-coder-0.5b-instruct-q4_k_m");
//! let answer = model.chat(&ChatRequest::new(vec![ChatMessage::user("Say hi")])).await?;
//! println!("{}", answer.text);
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod api;
mod error;
pub mod logging;
pub mod openai;
pub mod supervise;
pub mod tokenizer;

pub use api::{
    CandidateScore, ChatMessage, ChatRequest, Completion, Constraint, DeltaSink, FinishReason, LanguageModel, Sampling,
    ScoreRequest, Scores, Timings, Tokens, Usage,
};
pub use error::{Error, Result};
pub use openai::OpenAiClient;
pub use supervise::{LocalServer, ServerOptions, SupervisedModel, API_KEY_ENV};
pub use tokenizer::{Estimate, ServedTokenizer};
