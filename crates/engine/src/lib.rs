//! `quarry-engine`: Quarry's local engine on llama.cpp — the only crate that links it.
//!
//! - [`engine`]: one thread owning llama.cpp, serving requests with continuous batching and
//!   per-slot prompt caching;
//! - [`serve`]: the engine behind an OpenAI-compatible HTTP API (`quarry serve`), which the rest
//!   of Quarry reaches through `quarry_llm::LocalServer` in a supervised child process;
//! - [`kernels`]: the small-batch switch in front of llamafile's tinyBLAS (`csrc/`);
//! - [`system`]: the CPU and the kernels selected, for the start-up log and `/health`;
//! - [`raw_bench`]: the thinnest llama-cpp-2 loops, the reference `quarry bench llm` measures the
//!   engine against.
//!
//! ```no_run
//! use quarry_engine::engine::{Engine, EngineConfig, GenerateRequest, ModelSpec, Prompt};
//! use quarry_llm::ChatMessage;
//!
//! # async fn run() -> quarry_engine::Result<()> {
//! let path = quarry_models::ModelStore::from_env().resolve("qwen2.5-coder-0.5b-instruct-q4_k_m")?;
//! let engine = Engine::start(EngineConfig {
//!     models: vec![ModelSpec { id: "small".into(), path }],
//!     ..EngineConfig::default()
//! })?;
//! let mut events = engine.generate(GenerateRequest::new(Prompt::Chat(vec![ChatMessage::user("Say hi")])));
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! # Ok(())
//! # }
//! ```

mod backend;
pub mod engine;
mod error;
pub mod kernels;
pub mod raw_bench;
pub mod serve;
pub mod system;
mod template;
mod text;

pub use backend::{prepare_process_env, Threads};
pub use engine::{Engine, EngineConfig};
pub use error::{Error, Result};
pub use template::ChatTemplate;
