//! The one error type of `quarry-llm`. Every variant renders as one sentence that names the
//! model or address involved, because these messages go straight to users.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Resolving or checking a model file (unknown id, not downloaded, a bad GGUF).
    #[error(transparent)]
    Model(#[from] quarry_models::Error),

    #[error("could not reach {url}: {message}")]
    Network { url: String, message: String },

    #[error("{url} answered {status}: {message}")]
    Http { url: String, status: u16, message: String },

    #[error("the local model server stopped unexpectedly ({reason}); it is restarting, so try again")]
    EngineCrashed { reason: String },

    #[error("the local model server could not start: {reason}")]
    EngineStart { reason: String },

    /// The run the request belongs to reached its time limit first (the request was dropped,
    /// which frees the engine's slot).
    #[error("the run's time limit came before the model answered")]
    TimeLimit,

    /// The endpoint does not offer what was asked (scoring continuations, say); callers that
    /// have another way fall back to it.
    #[error("{0}")]
    Unsupported(String),

    /// A request the endpoint could not serve for a reason of its own (an empty reply, a client
    /// shut down); the message says which.
    #[error("{0}")]
    Generation(String),
}
