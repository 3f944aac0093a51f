//! The one error type of `quarry-models`. Every variant renders as one sentence that names the
//! model, file or address involved, because these messages go straight to users.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown model '{id}'; `quarry models list` shows the known ids")]
    UnknownModel { id: String },

    #[error("model '{id}' is not downloaded yet; run `quarry models fetch {id}`")]
    NotInstalled { id: String },

    #[error("the download was cancelled; run the same command again to resume it")]
    Cancelled,

    #[error("the model catalog {path} is invalid: {message}")]
    Catalog { path: PathBuf, message: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("could not download {url}: {message}")]
    Network { url: String, message: String },

    #[error("could not fetch {id} from any source ({})", attempts.join("; "))]
    AllSourcesFailed { id: String, attempts: Vec<String> },

    #[error(
        "not enough free space in {dir}: {id} needs {} but only {} is free",
        human_bytes(*need),
        human_bytes(*have)
    )]
    NoSpace { dir: PathBuf, id: String, need: u64, have: u64 },

    #[error("{path} is {what} {actual} but {expected} was expected{}", if *deleted { "; the download was deleted" } else { "" })]
    Mismatch { path: PathBuf, what: &'static str, expected: String, actual: String, deleted: bool },

    #[error("{path} is not a usable GGUF model file: {reason}")]
    BadGguf { path: PathBuf, reason: String },
}

impl Error {
    pub(crate) fn io(path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.as_ref().to_path_buf();
        move |source| Error::Io { path, source }
    }
}

/// Binary units with one decimal, as people read download sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn human_bytes_uses_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(491_400_064), "468.6 MiB");
        assert_eq!(human_bytes(1_117_320_768), "1.0 GiB");
    }
}
