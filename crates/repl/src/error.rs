use std::path::PathBuf;

/// Everything that can go wrong on the host side of the REPL. Errors *in* the user's code are
/// not here: they are data, in [`ReplResult::error`](crate::ReplResult::error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not start the REPL worker {program}: {source}")]
    Spawn { program: PathBuf, source: std::io::Error },
    /// The worker could not build the sandbox and will not run code; the message names the
    /// missing mechanism.
    #[error("the REPL worker refused to start: {0}")]
    Refused(String),
    #[error("the REPL worker did not start: {0}")]
    Startup(String),
    #[error("the REPL worker broke the protocol: {0}")]
    Protocol(String),
    #[error("could not prepare the REPL's directories or context: {0}")]
    Io(#[from] std::io::Error),
    #[error("the context could not be loaded: {0}")]
    Context(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
