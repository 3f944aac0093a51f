//! Reading a GGUF file's header before llama.cpp sees it. llama.cpp answers a bad file with a
//! null pointer (or an abort); reading the header ourselves lets us say exactly what is wrong —
//! not a GGUF, a version we cannot read, or a file cut short — and lets us take the chat template
//! from the metadata without loading any weights.

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"GGUF";
/// Versions llama.cpp reads today; version 1 files predate 2023-08 and are refused by it too.
const SUPPORTED_VERSIONS: [u32; 2] = [2, 3];
/// Guards against reading a corrupt count as "allocate 2^60 entries".
const MAX_COUNT: u64 = 1 << 24;
const MAX_STRING: u64 = 1 << 26;

/// A metadata value; arrays are summarised (tokenizer vocabularies hold 150k strings).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    String(String),
    Array { len: u64 },
}

/// What the header says about a model file.
#[derive(Debug, Clone)]
pub struct GgufInfo {
    pub version: u32,
    pub tensor_count: u64,
    pub metadata: BTreeMap<String, Value>,
    /// The bytes the tensors need, from the header; the file must be at least this long.
    pub expected_len: u64,
    pub file_len: u64,
}

impl GgufInfo {
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.metadata.get(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    pub fn get_int(&self, key: &str) -> Option<i64> {
        match self.metadata.get(key) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    pub fn chat_template(&self) -> Option<&str> {
        self.get_str("tokenizer.chat_template")
    }

    /// The context length the model was trained with, if the header says.
    pub fn context_length(&self) -> Option<u64> {
        let arch = self.architecture()?;
        self.get_int(&format!("{arch}.context_length")).map(|n| n as u64)
    }
}

/// Reads and checks the header of `path`: magic, version, metadata, tensor table, and that the
/// file holds every byte the tensor table points at.
pub fn inspect(path: &Path) -> Result<GgufInfo> {
    let bad = |reason: String| Error::BadGguf { path: path.to_path_buf(), reason };
    let file = std::fs::File::open(path).map_err(Error::io(path))?;
    let file_len = file.metadata().map_err(Error::io(path))?.len();
    if file_len < 24 {
        return Err(bad(format!("it is only {file_len} bytes long")));
    }
    let mut r = Reader { inner: BufReader::with_capacity(1 << 16, file), pos: 0 };
    let eof = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            bad("the file ends inside its header (truncated)".into())
        } else {
            Error::io(path)(e)
        }
    };
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic).map_err(eof)?;
    if &magic != MAGIC {
        return Err(bad("it does not start with the GGUF magic bytes".into()));
    }
    let version = r.u32().map_err(eof)?;
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(bad(format!("GGUF version {version} is not supported (2 and 3 are)")));
    }
    let tensor_count = r.u64().map_err(eof)?;
    let kv_count = r.u64().map_err(eof)?;
    if tensor_count > MAX_COUNT || kv_count > MAX_COUNT {
        return Err(bad(format!("its header claims {tensor_count} tensors and {kv_count} metadata keys")));
    }
    let mut metadata = BTreeMap::new();
    for _ in 0..kv_count {
        let key = r.string().map_err(eof)?.ok_or_else(|| bad("a metadata key is implausibly long".into()))?;
        let ty = r.u32().map_err(eof)?;
        let value =
            r.value(ty).map_err(eof)?.ok_or_else(|| bad(format!("metadata key '{key}' has an unknown type {ty}")))?;
        metadata.insert(key, value);
    }
    let alignment = match metadata.get("general.alignment") {
        Some(Value::Int(a)) if *a > 0 => *a as u64,
        _ => 32,
    };
    let mut data_needed = 0u64;
    for _ in 0..tensor_count {
        let name = r.string().map_err(eof)?.ok_or_else(|| bad("a tensor name is implausibly long".into()))?;
        let n_dims = r.u32().map_err(eof)?;
        if n_dims > 8 {
            return Err(bad(format!("tensor '{name}' claims {n_dims} dimensions")));
        }
        let mut elements = 1u64;
        for _ in 0..n_dims {
            elements = elements.saturating_mul(r.u64().map_err(eof)?);
        }
        let ty = r.u32().map_err(eof)?;
        let offset = r.u64().map_err(eof)?;
        let bytes = tensor_bytes(ty, elements).unwrap_or(1);
        data_needed = data_needed.max(offset.saturating_add(bytes));
    }
    let data_start = r.pos.div_ceil(alignment) * alignment;
    let expected_len = data_start.saturating_add(data_needed);
    if file_len < expected_len {
        return Err(bad(format!(
            "it is {file_len} bytes but its tensors need {expected_len} (truncated; download it again)"
        )));
    }
    Ok(GgufInfo { version, tensor_count, metadata, expected_len, file_len })
}

/// Bytes of a tensor of `elements` values of ggml type `ty`, for the types llama.cpp ships.
fn tensor_bytes(ty: u32, elements: u64) -> Option<u64> {
    // (bytes per block, values per block) from ggml's type traits.
    let (block_bytes, block_len): (u64, u64) = match ty {
        0 => (4, 1),     // F32
        1 => (2, 1),     // F16
        2 => (18, 32),   // Q4_0
        3 => (20, 32),   // Q4_1
        6 => (22, 32),   // Q5_0
        7 => (24, 32),   // Q5_1
        8 => (34, 32),   // Q8_0
        9 => (36, 32),   // Q8_1
        10 => (84, 256), // Q2_K
        11 => (110, 256),
        12 => (144, 256), // Q4_K
        13 => (176, 256), // Q5_K
        14 => (210, 256), // Q6_K
        15 => (292, 256), // Q8_K
        16 => (66, 256),  // IQ2_XXS
        17 => (74, 256),  // IQ2_XS
        18 => (98, 256),  // IQ3_XXS
        19 => (50, 256),  // IQ1_S
        20 => (18, 32),   // IQ4_NL
        21 => (110, 256), // IQ3_S
        22 => (82, 256),  // IQ2_S
        23 => (136, 256), // IQ4_XS
        24 => (1, 1),     // I8
        25 => (2, 1),     // I16
        26 => (4, 1),     // I32
        27 => (8, 1),     // I64
        28 => (8, 1),     // F64
        29 => (56, 256),  // IQ1_M
        30 => (2, 1),     // BF16
        34 => (54, 256),  // TQ1_0
        35 => (66, 256),  // TQ2_0
        _ => return None,
    };
    Some(elements.div_ceil(block_len) * block_bytes)
}

struct Reader<R> {
    inner: R,
    pos: u64,
}

impl<R: Read + Seek> Reader<R> {
    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_exact(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        self.inner.seek(SeekFrom::Current(n as i64))?;
        self.pos += n;
        Ok(())
    }

    fn u32(&mut self) -> std::io::Result<u32> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> std::io::Result<u64> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// `None` when the length is implausible (a corrupt file), so we never allocate it.
    fn string(&mut self) -> std::io::Result<Option<String>> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Ok(None);
        }
        let mut buf = vec![0u8; len as usize];
        self.read_exact(&mut buf)?;
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }

    fn scalar(&mut self, ty: u32) -> std::io::Result<Option<Value>> {
        let mut b = [0u8; 8];
        let v = match ty {
            0 | 1 | 7 => {
                self.read_exact(&mut b[..1])?;
                match ty {
                    0 => Value::Int(b[0] as i64),
                    1 => Value::Int(b[0] as i8 as i64),
                    _ => Value::Bool(b[0] != 0),
                }
            }
            2 | 3 => {
                self.read_exact(&mut b[..2])?;
                let raw = [b[0], b[1]];
                Value::Int(if ty == 2 { u16::from_le_bytes(raw) as i64 } else { i16::from_le_bytes(raw) as i64 })
            }
            4..=6 => {
                self.read_exact(&mut b[..4])?;
                let raw = [b[0], b[1], b[2], b[3]];
                match ty {
                    4 => Value::Int(u32::from_le_bytes(raw) as i64),
                    5 => Value::Int(i32::from_le_bytes(raw) as i64),
                    _ => Value::Float(f32::from_le_bytes(raw) as f64),
                }
            }
            10..=12 => {
                self.read_exact(&mut b)?;
                match ty {
                    10 => Value::Int(u64::from_le_bytes(b) as i64),
                    11 => Value::Int(i64::from_le_bytes(b)),
                    _ => Value::Float(f64::from_le_bytes(b)),
                }
            }
            8 => match self.string()? {
                Some(s) => Value::String(s),
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        Ok(Some(v))
    }

    fn value(&mut self, ty: u32) -> std::io::Result<Option<Value>> {
        if ty != 9 {
            return self.scalar(ty);
        }
        let elem = self.u32()?;
        let len = self.u64()?;
        if len > MAX_COUNT * 16 {
            return Ok(None);
        }
        let width = match elem {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => 0,
            _ => return Ok(None),
        };
        if width > 0 {
            self.skip(len * width)?;
        } else {
            for _ in 0..len {
                let n = self.u64()?;
                if n > MAX_STRING {
                    return Ok(None);
                }
                self.skip(n)?;
            }
        }
        Ok(Some(Value::Array { len }))
    }
}

/// Builds small GGUF files for tests (here and in other crates' tests).
#[doc(hidden)]
pub mod testing {
    /// A GGUF v3 file with the given string metadata and one F32 tensor of `elements` values whose
    /// data is present (`with_data`) or missing (a truncated file).
    pub fn tiny_gguf(meta: &[(&str, &str)], elements: u64, with_data: bool) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&1u64.to_le_bytes());
        out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        let put_str = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        for (k, v) in meta {
            put_str(&mut out, k);
            out.extend_from_slice(&8u32.to_le_bytes());
            put_str(&mut out, v);
        }
        put_str(&mut out, "weight");
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&elements.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // F32
        out.extend_from_slice(&0u64.to_le_bytes());
        while out.len() % 32 != 0 {
            out.push(0);
        }
        if with_data {
            out.resize(out.len() + elements as usize * 4, 0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::tiny_gguf;
    use super::*;

    fn write(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_metadata_of_a_valid_file() {
        let (_d, path) =
            write(&tiny_gguf(&[("general.architecture", "qwen2"), ("tokenizer.chat_template", "{{x}}")], 64, true));
        let info = inspect(&path).unwrap();
        assert_eq!(info.version, 3);
        assert_eq!(info.architecture(), Some("qwen2"));
        assert_eq!(info.chat_template(), Some("{{x}}"));
        assert_eq!(info.expected_len, info.file_len);
    }

    #[test]
    fn refuses_a_file_that_is_not_gguf() {
        let (_d, path) = write(b"<html>404 not found</html> and some more bytes");
        let err = inspect(&path).unwrap_err().to_string();
        assert!(err.contains("m.gguf is not a usable GGUF model file: it does not start with the GGUF magic"), "{err}");
    }

    #[test]
    fn refuses_a_truncated_file_naming_the_sizes() {
        let full = tiny_gguf(&[("general.architecture", "qwen2")], 1024, true);
        let (_d, path) = write(&full[..full.len() - 100]);
        let err = inspect(&path).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        // Cut inside the header too.
        let (_d2, path2) = write(&full[..40]);
        let err = inspect(&path2).unwrap_err().to_string();
        assert!(err.contains("ends inside its header"), "{err}");
    }

    #[test]
    fn refuses_an_unsupported_version() {
        let mut bytes = tiny_gguf(&[], 8, true);
        bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
        let (_d, path) = write(&bytes);
        assert!(inspect(&path).unwrap_err().to_string().contains("GGUF version 1 is not supported"));
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let err = inspect(Path::new("/nonexistent/x.gguf")).unwrap_err().to_string();
        assert!(err.starts_with("/nonexistent/x.gguf: "), "{err}");
    }
}
