//! Zip-based formats (DOCX, XLSX, PPTX, ODF, EPUB), checked before anything is inflated.
//!
//! The central directory declares every entry's compressed and uncompressed size. zip >= 9
//! enforces the declared size while inflating ("File is larger than its declared uncompressed
//! size", notes §4), so the declared sizes can be trusted: an archive is refused when it has too
//! many entries, an entry would inflate past a cap, all entries together would, or a large entry
//! compresses better than any real document does (POI's ZipSecureFile rule, 1:100; here 1:200
//! above 4 MiB, since XML of repeated rows reaches 1:100). Reads then use
//! `take(declared size)`, so a lying archive gets an error, not memory.

use std::borrow::Cow;
use std::io::{Cursor, Read};

use serde::{Deserialize, Serialize};

use super::{human_bytes, Kind, Unreadable};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZipLimits {
    pub max_entries: usize,
    pub max_entry_bytes: u64,
    pub max_total_bytes: u64,
    /// Uncompressed / compressed, for entries larger than `ratio_floor_bytes`.
    pub max_ratio: u64,
    pub ratio_floor_bytes: u64,
}

impl Default for ZipLimits {
    fn default() -> Self {
        ZipLimits {
            max_entries: 20_000,
            max_entry_bytes: 256 << 20,
            max_total_bytes: 1 << 30,
            max_ratio: 200,
            ratio_floor_bytes: 4 << 20,
        }
    }
}

/// A checked archive over bytes in memory.
pub struct Archive<'a> {
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
}

impl<'a> Archive<'a> {
    /// Opens the archive and applies the checks of the module docs.
    pub fn open(bytes: &'a [u8], limits: &ZipLimits) -> Result<Archive<'a>, Unreadable> {
        let zip = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| Unreadable::new(format!("a damaged zip archive (it cannot be opened: {e})")))?;
        if zip.len() > limits.max_entries {
            return Err(Unreadable::new(format!(
                "refused as a zip bomb: {} entries (at most {} are read)",
                zip.len(),
                limits.max_entries
            )));
        }
        let mut total = 0u64;
        for i in 0..zip.len() {
            let entry =
                zip.by_index_data(i).map_err(|e| Unreadable::new(format!("a damaged zip archive (entry {i}: {e})")))?;
            let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
            let (size, packed) = (entry.size(), entry.compressed_size());
            if size > limits.max_entry_bytes {
                return Err(Unreadable::new(format!(
                    "refused as a zip bomb: {name} would inflate to {} (at most {} per entry)",
                    human_bytes(size),
                    human_bytes(limits.max_entry_bytes)
                )));
            }
            if size > limits.ratio_floor_bytes && size / packed.max(1) > limits.max_ratio {
                return Err(Unreadable::new(format!(
                    "refused as a zip bomb: {name} would inflate from {} to {} (1:{}; documents stay under 1:{})",
                    human_bytes(packed),
                    human_bytes(size),
                    size / packed.max(1),
                    limits.max_ratio
                )));
            }
            total = total.saturating_add(size);
        }
        if total > limits.max_total_bytes {
            return Err(Unreadable::new(format!(
                "refused as a zip bomb: its entries would inflate to {} (at most {})",
                human_bytes(total),
                human_bytes(limits.max_total_bytes)
            )));
        }
        Ok(Archive { zip })
    }

    /// The entry names, in archive order.
    pub fn names(&self) -> Vec<String> {
        self.zip.file_names().filter_map(|n| n.ok().map(Cow::into_owned)).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.zip.index_for_name(name).is_some()
    }

    /// An entry's bytes, or `None` if there is no such entry.
    pub fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, Unreadable> {
        let Some(index) = self.zip.index_for_name(name) else { return Ok(None) };
        let mut file =
            self.zip.by_index(index).map_err(|e| Unreadable::new(format!("a damaged zip archive ({name}: {e})")))?;
        let declared = file.size();
        let mut out = Vec::with_capacity(declared.min(64 << 20) as usize);
        // One byte more than declared: an entry that inflates past its declared size is a bomb
        // that lies (zip >= 9 also says so itself when it reaches the end).
        let read = file.by_ref().take(declared + 1).read_to_end(&mut out);
        if out.len() as u64 > declared || read.as_ref().is_err_and(|e| e.to_string().contains("larger than")) {
            return Err(Unreadable::new(format!(
                "refused as a zip bomb: {name} inflates past the {} its archive declares",
                human_bytes(declared)
            )));
        }
        read.map_err(|e| Unreadable::new(format!("a damaged zip archive ({name} cannot be inflated: {e})")))?;
        Ok(Some(out))
    }

    /// An entry as text (UTF-8 or with a BOM, as XML is), or `None`.
    pub fn read_string(&mut self, name: &str) -> Result<Option<String>, Unreadable> {
        Ok(self.read(name)?.map(|b| super::text::decode(&b).text))
    }

    /// Like [`Archive::read_string`], but a missing entry is an error naming what it is.
    pub fn require(&mut self, name: &str, what: &str) -> Result<String, Unreadable> {
        self.read_string(name)?.ok_or_else(|| Unreadable::new(format!("a damaged {what}: it has no {name}")))
    }
}

/// What a zip holds, from its entries (notes §3.8): ODF and EPUB by their `mimetype` entry,
/// OOXML by its main part.
pub fn kind_of(bytes: &[u8], name: &str, limits: &ZipLimits) -> Result<Kind, Unreadable> {
    let mut archive = Archive::open(bytes, limits)?;
    if let Some(mime) = archive.read("mimetype")? {
        let mime = String::from_utf8_lossy(&mime);
        let kind = match mime.trim() {
            "application/vnd.oasis.opendocument.text" | "application/vnd.oasis.opendocument.text-template" => {
                Some(Kind::Odt)
            }
            "application/vnd.oasis.opendocument.spreadsheet"
            | "application/vnd.oasis.opendocument.spreadsheet-template" => Some(Kind::Ods),
            "application/vnd.oasis.opendocument.presentation"
            | "application/vnd.oasis.opendocument.presentation-template" => Some(Kind::Odp),
            "application/epub+zip" => Some(Kind::Epub),
            _ => None,
        };
        if let Some(k) = kind {
            return Ok(k);
        }
    }
    if archive.contains("word/document.xml") {
        return Ok(Kind::Docx);
    }
    if archive.contains("xl/workbook.xml") || archive.contains("xl/workbook.bin") {
        return Ok(Kind::Xlsx);
    }
    if archive.contains("ppt/presentation.xml") {
        return Ok(Kind::Pptx);
    }
    // OOXML whose main part is elsewhere: the package relationships name it.
    if let Some(rels) = archive.read_string("_rels/.rels")? {
        if rels.contains("officeDocument") {
            for (needle, kind) in [("word/", Kind::Docx), ("xl/", Kind::Xlsx), ("ppt/", Kind::Pptx)] {
                if rels.contains(needle) {
                    return Ok(kind);
                }
            }
        }
    }
    if archive.contains("content.xml") && archive.contains("META-INF/manifest.xml") {
        let content = archive.read_string("content.xml")?.unwrap_or_default();
        for (needle, kind) in
            [("<office:text", Kind::Odt), ("<office:spreadsheet", Kind::Ods), ("<office:presentation", Kind::Odp)]
        {
            if content.contains(needle) {
                return Ok(kind);
            }
        }
    }
    if archive.contains("META-INF/container.xml") {
        return Ok(Kind::Epub);
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    Err(Unreadable::new(if ext.is_empty() || ext == "zip" {
        "unsupported format: a zip archive (its files are not read; unpack it into the folder)".to_string()
    } else {
        format!("unsupported format: .{ext} (a zip archive that is no Office, OpenDocument or EPUB file)")
    }))
}
