//! What a file is, from its first bytes (notes §3.8): magic numbers for PDF, zip, OLE2 and RTF;
//! a look at the text for HTML and mail; infer 0.22 to name binary formats Quarry does not read.
//! Zips and OLE2 files are decided later by their entries ([`super::zipcheck::kind_of`],
//! [`cfb_kind`]). The extension only refines text (`.csv`, `.tsv`) and names an unsupported
//! binary ("unsupported format: .dwg").

use super::{text, Kind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    Kind(Kind),
    /// A zip archive: the entries decide (DOCX, XLSX, PPTX, ODF, EPUB, or unsupported).
    Zip,
    /// An OLE2 compound file: its stream names decide (XLS, or an unsupported legacy format).
    Cfb,
    Unsupported(String),
}

/// Extensions of raw data rather than documents: a binary with one of these (or none) is a
/// "binary file", others name their format.
const DATA_EXTENSIONS: &[&str] = &[
    "bin", "dat", "data", "img", "iso", "raw", "dump", "o", "a", "so", "dll", "exe", "class", "pyc", "wasm", "db",
    "sqlite", "idx", "pack", "lock", "cache", "tmp",
];

/// Decides the type from the first bytes (`head`, up to [`super::SNIFF_BYTES`]), the file's
/// name and its length.
pub fn sniff(head: &[u8], name: &str, len: u64) -> Detected {
    if len == 0 {
        return Detected::Unsupported("an empty file (0 bytes)".into());
    }
    let ext = extension(name);
    if memfind(&head[..head.len().min(1024)], b"%PDF-").is_some() {
        return Detected::Kind(Kind::Pdf);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Detected::Zip;
    }
    if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return Detected::Cfb;
    }
    if head.starts_with(b"{\\rtf") {
        return Detected::Kind(Kind::Rtf);
    }
    if text::looks_binary(head) {
        return Detected::Unsupported(binary_reason(head, &ext));
    }
    // Text from here on.
    if let Some(kind) = markup_or_mail(head) {
        return Detected::Kind(kind);
    }
    match ext.as_str() {
        "csv" => Detected::Kind(Kind::Csv),
        "tsv" | "tab" => Detected::Kind(Kind::Tsv),
        _ => Detected::Kind(Kind::Text),
    }
}

fn extension(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 12 => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

fn binary_reason(head: &[u8], ext: &str) -> String {
    if let Some(t) = infer::get(head) {
        return format!("unsupported format: .{} ({})", t.extension(), t.mime_type());
    }
    if ext.is_empty() || DATA_EXTENSIONS.contains(&ext) {
        "binary file".into()
    } else {
        format!("unsupported format: .{ext}")
    }
}

/// HTML, an mbox, or a single mail message, judged from the text's start.
fn markup_or_mail(head: &[u8]) -> Option<Kind> {
    let start = skip_bom_and_space(head);
    let lower: Vec<u8> = start[..start.len().min(2048)].to_ascii_lowercase();
    if lower.starts_with(b"<") {
        for tag in [&b"<!doctype html"[..], b"<html", b"<head", b"<body"] {
            if memfind(&lower, tag).is_some() {
                return Some(Kind::Html);
            }
        }
    }
    if start.starts_with(b"From ") {
        // An mbox: "From " lines separate messages. One message with its envelope line is a
        // plain message (hyperkitty's unixfrom-date.eml).
        let next_from = memfind(head, b"\nFrom ").is_some();
        let header_after = start.split(|&b| b == b'\n').nth(1).is_some_and(is_header_line);
        if header_after {
            return Some(if next_from { Kind::Mbox } else { Kind::Eml });
        }
    }
    if looks_like_mail_headers(start) {
        return Some(Kind::Eml);
    }
    None
}

fn skip_bom_and_space(mut s: &[u8]) -> &[u8] {
    if s.starts_with(b"\xEF\xBB\xBF") {
        s = &s[3..];
    }
    let n = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &s[n..]
}

fn is_header_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else { return false };
    colon > 0 && line[..colon].iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The text opens with RFC 5322 header lines, of at least two names every mail has. Two names,
/// not two lines: a file of records that each start `Date: Jan 02, 2023 || User: 311 || ...`
/// is a column of "Date" headers, and was read as a message with no body (0 lines).
fn looks_like_mail_headers(s: &[u8]) -> bool {
    const COMMON: &[&str] = &[
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "received",
        "return-path",
        "mime-version",
        "delivered-to",
        "content-type",
        "cc",
        "reply-to",
        "sender",
        "x-mailer",
    ];
    let mut common = std::collections::HashSet::new();
    for (i, line) in s.split(|&b| b == b'\n').take(40).enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if i == 0 {
                return false;
            }
            continue; // a folded header
        }
        if !is_header_line(line) {
            return false;
        }
        let name = String::from_utf8_lossy(&line[..line.iter().position(|&b| b == b':').unwrap_or(0)]).to_lowercase();
        if COMMON.contains(&name.as_str()) {
            common.insert(name);
        }
    }
    common.len() >= 2
}

/// An OLE2 compound file's kind, from the UTF-16 names of its streams: only legacy Excel is
/// read (calamine); Word, PowerPoint and Outlook files get a reason naming what to do.
pub fn cfb_kind(bytes: &[u8], name: &str) -> Result<Kind, String> {
    let has = |stream: &str| {
        let utf16: Vec<u8> = stream.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        memfind(bytes, &utf16).is_some()
    };
    if has("Workbook") || has("Book") {
        return Ok(Kind::Xls);
    }
    if has("WordDocument") {
        return Err("unsupported format: legacy Word .doc (save it as .docx to have it read)".into());
    }
    if has("PowerPoint Document") {
        return Err("unsupported format: legacy PowerPoint .ppt (save it as .pptx to have it read)".into());
    }
    if has("__substg1.0_") {
        return Err("unsupported format: Outlook .msg (save the message as .eml to have it read)".into());
    }
    let ext = extension(name);
    Err(if ext.is_empty() {
        "unsupported format: an OLE2 compound file".into()
    } else {
        format!("unsupported format: .{ext} (an OLE2 compound file)")
    })
}

/// The first position of `needle` in `hay`.
pub fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        match hay[i..hay.len() - needle.len() + 1].iter().position(|&b| b == first) {
            Some(p) => {
                let at = i + p;
                if &hay[at..at + needle.len()] == needle {
                    return Some(at);
                }
                i = at + 1;
            }
            None => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(head: &[u8], name: &str) -> Detected {
        sniff(head, name, head.len() as u64)
    }

    #[test]
    fn content_decides_not_the_extension() {
        assert_eq!(kind(b"%PDF-1.7\n...", "report.docx"), Detected::Kind(Kind::Pdf));
        assert_eq!(kind(b"PK\x03\x04rest", "x.pdf"), Detected::Zip);
        assert_eq!(kind(b"{\\rtf1\\ansi hello}", "a.txt"), Detected::Kind(Kind::Rtf));
        assert_eq!(kind(b"<!DOCTYPE html><p>x", "a.txt"), Detected::Kind(Kind::Html));
        assert_eq!(kind(b"\n  <html lang=en>", "page"), Detected::Kind(Kind::Html));
        assert_eq!(kind(b"From: a@b.c\nTo: d@e.f\nSubject: hi\n\nbody", "note.txt"), Detected::Kind(Kind::Eml));
        assert_eq!(
            kind(b"From a@b Mon Jan 1 2024\nFrom: a@b\n\nx\n\nFrom b@c Tue\nFrom: b@c\n\ny", "box"),
            Detected::Kind(Kind::Mbox)
        );
        assert_eq!(kind(b"From here on, the plan is", "plan.txt"), Detected::Kind(Kind::Text));
        assert_eq!(kind(b"Subject: only one header line\n", "a.txt"), Detected::Kind(Kind::Text));
        let records = b"Date: Jan 02, 2023 || User: 311 || Text: Great\nDate: Jan 03, 2023 || User: 75 || Text: Bad\n";
        assert_eq!(kind(records, "a.txt"), Detected::Kind(Kind::Text), "records are not a mail");
        assert_eq!(kind(b"a,b\n1,2\n", "t.csv"), Detected::Kind(Kind::Csv));
        assert_eq!(kind(b"fn main() {}\n", "main.rs"), Detected::Kind(Kind::Text));
    }

    #[test]
    fn binaries_are_named() {
        assert_eq!(sniff(b"", "empty.txt", 0), Detected::Unsupported("an empty file (0 bytes)".into()));
        assert_eq!(
            kind(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "logo.png"),
            Detected::Unsupported("unsupported format: .png (image/png)".into())
        );
        assert_eq!(
            kind(b"AC1032\0\0\0\0\x01\x02", "plan.dwg"),
            Detected::Unsupported("unsupported format: .dwg (image/vnd.dwg)".into())
        );
        assert_eq!(kind(b"\x01\x02\0\0QXZ1", "model.xyz"), Detected::Unsupported("unsupported format: .xyz".into()));
        assert_eq!(kind(&[0u8; 64], "big.bin"), Detected::Unsupported("binary file".into()));
        assert_eq!(kind(&[0u8; 64], "noext"), Detected::Unsupported("binary file".into()));
    }
}
