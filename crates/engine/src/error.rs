//! The one error type of `quarry-engine`. Every variant renders as one sentence, because the
//! HTTP layer sends these messages to clients word for word.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Checking a model file before llama.cpp sees it (its GGUF header).
    #[error(transparent)]
    Model(#[from] quarry_models::Error),

    #[error("model '{id}' is not loaded here (loaded: {loaded})")]
    UnknownModel { id: String, loaded: String },

    #[error("could not load the model {path}: {message}")]
    Load { path: PathBuf, message: String },

    #[error("the chat template of {model} could not be rendered: {message}")]
    Template { model: String, message: String },

    /// The request itself is wrong (a bad grammar or schema, an empty prompt, a token outside
    /// the vocabulary): the caller's to fix, an HTTP 400.
    #[error("{0}")]
    InvalidRequest(String),

    #[error("the prompt has {prompt} tokens but the context window holds {ctx}")]
    PromptTooLong { prompt: usize, ctx: usize },

    /// The engine thread is gone (it panicked, or the engine is shutting down).
    #[error("the engine has stopped; restart `quarry serve`")]
    Stopped,

    #[error("generation failed: {0}")]
    Generation(String),
}
