//! `quarry-models`: which models exist and where their files are — no inference.
//!
//! - [`catalog`]: the known models (`models/catalog.toml`) and this machine's registrations;
//! - [`store`]: where model files live and which are installed;
//! - [`fetch`]: downloads that try sources in order, resume, and verify size and sha256;
//! - [`gguf`]: reading a GGUF header to refuse bad files with a clear sentence;
//! - [`import`]: registering a GGUF the user already has.
//!
//! Nothing here links llama.cpp, so the desktop window can list, download and check models.
//!
//! ```no_run
//! use quarry_models::{Fetcher, ModelStore, NoProgress};
//!
//! # async fn run() -> quarry_models::Result<()> {
//! let store = ModelStore::from_env();
//! let entry = store.catalog()?.get("qwen2.5-coder-0.5b-instruct-q4_k_m")?.clone();
//! let path = Fetcher::new(store.clone())?.fetch(&entry, &NoProgress).await?;
//! println!("{} is at {}", entry.id, path.display());
//! # Ok(())
//! # }
//! ```

pub mod catalog;
mod error;
pub mod fetch;
pub mod gguf;
pub mod import;
pub mod store;

pub use catalog::{Catalog, ModelEntry, Role, Source};
pub use error::{human_bytes, Error, Result};
pub use fetch::{CancelToken, Fetcher, NoProgress, Progress};
pub use store::{ModelStore, Status};
