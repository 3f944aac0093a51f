//! Text in any encoding: a byte-order mark first, then UTF-8, then detection (notes §3.7).
//!
//! 1. A BOM (UTF-8, UTF-16LE/BE) decides.
//! 2. BOM-less UTF-16: chardetng does not detect it ("belongs on the BOM layer", its README), so
//!    a NUL in every other byte of mostly-ASCII text decides it here.
//! 3. Valid UTF-8 is UTF-8.
//! 4. *Mostly* UTF-8 — many valid multi-byte sequences, a few broken ones (a file cut mid-way, a
//!    bad paste) — stays UTF-8 with the broken bytes replaced: a legacy-encoding guess would turn
//!    every accented letter of such a file into mojibake.
//! 5. Otherwise chardetng guesses the legacy encoding and encoding_rs decodes it.
//!
//! Replaced bytes and guessed encodings become a warning.

/// A decoded text and how it was decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub text: String,
    /// The encoding's WHATWG name: "UTF-8", "UTF-16LE", "windows-1252", "Shift_JIS", ...
    pub encoding: &'static str,
    /// How it was chosen: "BOM", "UTF-8", "NUL pattern", "detected".
    pub how: &'static str,
    /// How many malformed sequences became U+FFFD.
    pub replaced: usize,
}

impl Decoded {
    /// The warning the reader should see, if any.
    pub fn warning(&self) -> Option<String> {
        match (self.replaced, self.how) {
            (0, "detected") => {
                Some(format!("no byte-order mark and not UTF-8: decoded as {} (detected)", self.encoding))
            }
            (0, _) => None,
            (n, _) => Some(format!(
                "{n} invalid {} sequence{} replaced with U+FFFD",
                self.encoding,
                if n == 1 { " was" } else { "s were" }
            )),
        }
    }
}

/// Decodes bytes of unknown encoding; see the module docs.
pub fn decode(bytes: &[u8]) -> Decoded {
    if let Some((enc, bom_len)) = encoding_rs::Encoding::for_bom(bytes) {
        return decode_with(enc, &bytes[bom_len..], "BOM");
    }
    if let Some(enc) = utf16_without_bom(bytes) {
        return decode_with(enc, bytes, "NUL pattern");
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Decoded { text: s.to_string(), encoding: "UTF-8", how: "UTF-8", replaced: 0 };
    }
    if mostly_utf8(bytes) {
        return decode_with(encoding_rs::UTF_8, bytes, "UTF-8");
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    // 1 MiB is plenty for a guess and keeps a 32 MiB file's detection cheap.
    detector.feed(&bytes[..bytes.len().min(1 << 20)], bytes.len() <= 1 << 20);
    let enc = detector.guess(None, chardetng::Utf8Detection::Allow);
    decode_with(enc, bytes, "detected")
}

/// Decodes with a known encoding (a BOM, a declared charset).
pub fn decode_with(enc: &'static encoding_rs::Encoding, bytes: &[u8], how: &'static str) -> Decoded {
    let mut decoder = enc.new_decoder_without_bom_handling();
    let mut text = String::with_capacity(decoder.max_utf8_buffer_length(bytes.len()).unwrap_or(bytes.len()));
    let mut replaced = 0usize;
    let mut input = bytes;
    loop {
        let (result, read) = decoder.decode_to_string_without_replacement(input, &mut text, true);
        input = &input[read..];
        match result {
            encoding_rs::DecoderResult::InputEmpty => break,
            encoding_rs::DecoderResult::OutputFull => {
                text.reserve(input.len() * 3 + 16);
            }
            encoding_rs::DecoderResult::Malformed(_, _) => {
                replaced += 1;
                text.push('\u{FFFD}');
            }
        }
    }
    Decoded { text, encoding: enc.name(), how, replaced }
}

/// UTF-16 without a BOM: in the first 4 KiB, most bytes on one parity are NUL and almost none
/// on the other (ASCII-range text in UTF-16).
fn utf16_without_bom(bytes: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    let sample = &bytes[..bytes.len().min(4096) & !1];
    if sample.len() < 8 {
        return None;
    }
    let pairs = sample.len() / 2;
    let (mut even, mut odd) = (0usize, 0usize);
    for pair in sample.chunks_exact(2) {
        even += (pair[0] == 0) as usize;
        odd += (pair[1] == 0) as usize;
    }
    let mostly = |n: usize| n * 10 >= pairs * 7;
    let hardly = |n: usize| n * 20 <= pairs;
    if mostly(odd) && hardly(even) {
        Some(encoding_rs::UTF_16LE)
    } else if mostly(even) && hardly(odd) {
        Some(encoding_rs::UTF_16BE)
    } else {
        None
    }
}

/// Valid multi-byte UTF-8 sequences outnumber broken ones at least 4 to 1 (a legacy-encoded
/// file has almost no valid multi-byte sequences, and one broken sequence per accented letter).
fn mostly_utf8(bytes: &[u8]) -> bool {
    let (mut valid, mut broken) = (0usize, 0usize);
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                valid += s.bytes().filter(|b| *b >= 0xC0).count();
                break;
            }
            Err(e) => {
                let good = &rest[..e.valid_up_to()];
                valid += good.iter().filter(|b| **b >= 0xC0).count();
                broken += 1;
                let skip = e.error_len().unwrap_or(rest.len() - e.valid_up_to());
                rest = &rest[e.valid_up_to() + skip..];
            }
        }
    }
    valid > 0 && valid >= broken * 4
}

/// Binary data, not text: a NUL in the first 8 KiB (git's rule) — unless it is UTF-16 — or
/// mostly control characters that no text uses (GPT4All's rule, notes §3.7).
pub fn looks_binary(head: &[u8]) -> bool {
    if head.is_empty() || encoding_rs::Encoding::for_bom(head).is_some() || utf16_without_bom(head).is_some() {
        return false;
    }
    let sample = &head[..head.len().min(8192)];
    if sample.contains(&0) {
        return true;
    }
    let odd = sample.iter().filter(|&&b| matches!(b, 0x01..=0x06 | 0x0E..=0x1A | 0x1C..=0x1F)).count();
    odd * 10 > sample.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boms_utf8_and_legacy_encodings() {
        let d = decode(b"\xEF\xBB\xBFcaf\xC3\xA9");
        assert_eq!((d.text.as_str(), d.encoding, d.how), ("café", "UTF-8", "BOM"));
        let utf16le: Vec<u8> = "\u{feff}Grüße".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        assert_eq!(decode(&utf16le).text, "Grüße");
        let bomless: Vec<u8> = "plain UTF-16 text here".encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        let d = decode(&bomless);
        assert_eq!((d.text.as_str(), d.encoding), ("plain UTF-16 text here", "UTF-16BE"));
        let d = decode("naïve".as_bytes());
        assert_eq!((d.encoding, d.warning()), ("UTF-8", None));
        // Shift_JIS, long enough for a guess.
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("日本語のテキストです。これは文書の本文です。");
        let d = decode(&sjis);
        assert_eq!(d.encoding, "Shift_JIS");
        assert_eq!(d.text, "日本語のテキストです。これは文書の本文です。");
        assert!(d.warning().unwrap().contains("decoded as Shift_JIS"));
        let d = decode(b"caf\xE9 cr\xE8me br\xFBl\xE9e");
        assert_eq!((d.text.as_str(), d.encoding), ("café crème brûlée", "windows-1252"));
    }

    #[test]
    fn broken_utf8_is_replaced_with_a_warning() {
        let mut bytes = "Grüße aus München, naïve café. ".repeat(5).into_bytes();
        bytes.extend_from_slice(b"bad \xFF byte and a cut \xE2\x82");
        let d = decode(&bytes);
        assert_eq!(d.encoding, "UTF-8");
        assert_eq!(d.replaced, 2);
        assert!(d.text.ends_with("bad \u{FFFD} byte and a cut \u{FFFD}"), "{:?}", d.text);
        assert_eq!(d.warning().unwrap(), "2 invalid UTF-8 sequences were replaced with U+FFFD");
    }

    #[test]
    fn binary_detection() {
        assert!(looks_binary(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"));
        assert!(looks_binary(&[0u8; 4096]));
        assert!(!looks_binary(b"plain text\n"));
        let utf16: Vec<u8> = "text".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        assert!(!looks_binary(&utf16));
    }
}
