//! `quarry-llm`: everything Quarry knows about language models.
//!
//! - [`catalog`]: the known models (`models/catalog.toml`) and this machine's registrations;
//! - [`store`]: where model files live and which are installed;
//! - [`fetch`]: downloads that try sources in order, resume, and verify size and sha256;
//! - [`gguf`]: reading a GGUF header to refuse bad files with a clear sentence;
//! - [`local`]: in-process inference on llama.cpp with the model's own chat template;
//! - [`api`]: the one model protocol, the [`LanguageModel`] trait, in OpenAI's shape;
//! - [`openai`]: the OpenAI-compatible HTTP client, Quarry's main [`LanguageModel`];
//! - [`engine`]: the local engine — continuous batching and prompt caching on llama.cpp;
//! - [`serve`]: the engine behind an OpenAI-compatible HTTP API (`quarry serve`);
//! - [`supervise`]: `quarry serve` as a child process, restarted if llama.cpp aborts.
//!
//! ```no_run
//! use quarry_llm::{local::{ChatMessage, GenerateOptions, LoadOptions, LocalModel}, ModelStore};
//!
//! let store = ModelStore::from_env();
//! let path = store.resolve("qwen2.5-coder-0.5b-instruct-q4_k_m")?;
//! let model = LocalModel::load(&path, &LoadOptions::default())?;
//! let mut answer = String::new();
//! model.chat(&[ChatMessage::user("Say hi")], &GenerateOptions::default(), &mut answer)?;
//! # Ok::<(), quarry_llm::Error>(())
//! ```

pub mod api;
pub mod catalog;
pub mod engine;
mod error;
pub mod fetch;
pub mod gguf;
pub mod import;
pub mod local;
pub mod openai;
pub mod serve;
pub mod store;
pub mod supervise;

pub use api::{ChatRequest, Completion, Constraint, DeltaSink, FinishReason, LanguageModel, Sampling, Timings, Usage};
pub use catalog::{Catalog, ModelEntry, Role, Source};
pub use engine::{Engine, EngineConfig};
pub use error::{human_bytes, Error, Result};
pub use fetch::{CancelToken, Fetcher, NoProgress, Progress};
pub use openai::OpenAiClient;
pub use store::{ModelStore, Status};
pub use supervise::{LocalServer, ServerOptions, SupervisedModel};
