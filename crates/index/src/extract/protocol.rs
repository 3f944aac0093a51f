//! The extraction worker's protocol: JSON lines on its stdin (requests) and stdout (replies),
//! one file per request, answered in order.
//!
//! ```text
//! host -> {"type":"start","protocol":1,"config":{...}}
//! worker <- {"type":"ready","protocol":1,"pid":42,"active":["landlock",...],"missing":[],"pdfium":"pdfium 8149"}
//! host -> {"type":"extract","id":1,"path":"/data/msa.pdf","options":{...}}
//! worker <- {"type":"extracted","id":1,"result":{"kind":"pdf","extractor":"pdfium 8149","pages":[...]}}
//!        or {"type":"unreadable","id":1,"reason":"encrypted: this PDF needs a password to be read"}
//! host -> {"type":"render","id":2,"path":"/data/scan.pdf","page":3,"dpi":300,"out":"/tmp/.../page.pgm"}
//! worker <- {"type":"rendered","id":2,"width":2480,"height":3508}
//! ```
//!
//! Paths travel as strings when they are UTF-8 and as byte arrays otherwise, so a file name
//! that is not UTF-8 reaches the worker intact.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Extracted, Options};

pub const PROTOCOL_VERSION: u32 = 1;

/// The longest reply line the host reads: 32 MiB of text is the output cap, and JSON escapes
/// can double it.
pub const MAX_LINE_BYTES: usize = 128 << 20;

/// A path that survives JSON whatever its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WirePath(pub PathBuf);

impl WirePath {
    pub fn new(p: impl AsRef<Path>) -> WirePath {
        WirePath(p.as_ref().to_path_buf())
    }
}

impl Serialize for WirePath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.to_str() {
            Some(text) => s.serialize_str(text),
            None => self.0.as_os_str().as_bytes().serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for WirePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Bytes(Vec<u8>),
        }
        Ok(WirePath(match Raw::deserialize(d)? {
            Raw::Text(t) => PathBuf::from(t),
            Raw::Bytes(b) => PathBuf::from(OsString::from_vec(b)),
        }))
    }
}

/// The worker's resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// RLIMIT_AS. PDFium has no decompression cap (2.07 GB on a 1.5 MB flate bomb, notes
    /// §2.3): the limit turns that into an allocation failure in the worker.
    pub memory_bytes: u64,
    /// The extraction thread's stack: deep nesting that overflows pdf_oxide's 8 MB main stack
    /// at depth 20,000 (notes §2.3) fits in this.
    pub stack_bytes: u64,
    /// RLIMIT_FSIZE (rendered pages are the only files it writes).
    pub file_size_bytes: u64,
    pub open_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: 2 << 30, stack_bytes: 256 << 20, file_size_bytes: 512 << 20, open_files: 64 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// Read-only (Landlock): the folder or files being read.
    pub readable: Vec<WirePath>,
    /// Read-write: rendered pages go here.
    pub scratch: WirePath,
    pub limits: Limits,
    /// The PDFium library to load before confinement; `None` reads PDFs with pdf_oxide.
    pub pdfium: Option<WirePath>,
    /// Why there is no PDFium, when there is none (reported back in the ready message).
    #[serde(default)]
    pub pdfium_missing: Option<String>,
    pub allow_unconfined: bool,
    #[serde(default)]
    pub pretend_unavailable: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    Start { protocol: u32, config: WorkerConfig },
    Extract { id: u64, path: WirePath, options: Box<Options> },
    Render { id: u64, path: WirePath, page: u32, dpi: u32, out: WirePath },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Ready {
        protocol: u32,
        pid: u32,
        active: Vec<String>,
        missing: Vec<String>,
        /// The PDF engine: "pdfium 8149", or why PDFium is not there.
        pdfium: Result<String, String>,
    },
    Refused {
        message: String,
    },
    Extracted {
        id: u64,
        result: Box<Extracted>,
    },
    Unreadable {
        id: u64,
        reason: String,
    },
    Rendered {
        id: u64,
        width: u32,
        height: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_are_not_utf8_survive_json() {
        let raw = PathBuf::from(OsString::from_vec(b"caf\xe9.txt".to_vec()));
        let json = serde_json::to_string(&WirePath(raw.clone())).unwrap();
        assert_eq!(json, "[99,97,102,233,46,116,120,116]");
        assert_eq!(serde_json::from_str::<WirePath>(&json).unwrap().0, raw);
        let json = serde_json::to_string(&WirePath::new("a/é.pdf")).unwrap();
        assert_eq!(json, "\"a/é.pdf\"");
    }
}
