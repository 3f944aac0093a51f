//! `quarry-rlm`: how Quarry answers a question about a folder.
//!
//! Today it holds the **direct** mode: the whole folder goes into the model's window (truncated
//! with a visible warning when it does not fit) and the model answers in one pass. It is both
//! what `quarry ask` runs until the Recursive Language Model loop lands here and, afterwards,
//! the baseline the loop must beat (`quarry ask --mode direct`).
//!
//! ```no_run
//! use quarry_llm::local::{GenerateOptions, LoadOptions, LocalModel};
//! let folder = quarry_index::Folder::load("assets/demo".as_ref())?;
//! let model = LocalModel::load("model.gguf".as_ref(), &LoadOptions::default())?;
//! let prompt = quarry_rlm::direct::DirectPrompt::build(&model, &folder, "Who signed?", 8192, 512)?;
//! let mut answer = String::new();
//! model.chat(&prompt.messages, &GenerateOptions::default(), &mut answer)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod direct;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Model(#[from] quarry_llm::Error),
    #[error(transparent)]
    Corpus(#[from] quarry_index::Error),
    #[error("the question is empty; ask something about the folder")]
    EmptyQuestion,
    #[error("a {window}-token window is too small for the question and a {answer}-token answer")]
    WindowTooSmall { window: usize, answer: usize },
}
