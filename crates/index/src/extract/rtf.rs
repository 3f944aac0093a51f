//! RTF by a small byte-level reader (notes §3.6: rtf-parser maps `\'hh` to Latin-1 and ignores
//! `\ansicpg`, so Cyrillic or Chinese RTF becomes mojibake, and it panics slicing `&str` by byte
//! offsets).
//!
//! It tracks groups, skips destinations that hold no text (font and colour tables, pictures,
//! objects, field instructions, `\*` extensions), decodes `\'hh` bytes in the code page in force
//! (`\ansicpgN`, or the current font's `\fcharsetN`), and `\uN` with its `\ucN` fallback skip.

use super::{Extracted, Kind, Outcome, Unreadable};

/// Destinations whose content is not document text.
const SKIP: &[&str] = &[
    "fonttbl",
    "colortbl",
    "stylesheet",
    "info",
    "pict",
    "object",
    "objdata",
    "themedata",
    "colorschememapping",
    "latentstyles",
    "datastore",
    "xmlnstbl",
    "listtable",
    "listoverridetable",
    "rsidtbl",
    "generator",
    "mmathPr",
    "fldinst",
    "pgdsctbl",
    "nonshppict",
    "filetbl",
    "revtbl",
    "bkmkstart",
    "bkmkend",
    "xmlopen",
    "listtext",
    "pntext",
    "pntxta",
    "pntxtb",
    "wgrffmtfilter",
];

#[derive(Clone)]
struct Group {
    skip: bool,
    uc: usize,
    font: Option<i32>,
    fonttbl: bool,
}

fn codepage_encoding(cp: i32) -> Option<&'static encoding_rs::Encoding> {
    let label = match cp {
        932 => "shift_jis".to_string(),
        936 => "gbk".to_string(),
        949 => "euc-kr".to_string(),
        950 => "big5".to_string(),
        874 => "windows-874".to_string(),
        866 => "ibm866".to_string(),
        10000 => "macintosh".to_string(),
        1250..=1258 => format!("windows-{cp}"),
        65001 => "utf-8".to_string(),
        _ => return None,
    };
    encoding_rs::Encoding::for_label(label.as_bytes())
}

fn charset_codepage(charset: i32) -> Option<i32> {
    Some(match charset {
        0 => 1252,
        77 => 10000,
        128 => 932,
        129 => 949,
        134 => 936,
        136 => 950,
        161 => 1253,
        162 => 1254,
        163 => 1258,
        177 => 1255,
        178 => 1256,
        186 => 1257,
        204 => 1251,
        222 => 874,
        238 => 1250,
        _ => return None,
    })
}

pub fn rtf(bytes: &[u8]) -> Outcome {
    let text = to_text(bytes)?;
    let mut ex = Extracted::new(Kind::Rtf, "rtf");
    ex.push("1", text);
    Ok(ex)
}

/// The text of an RTF document.
pub fn to_text(b: &[u8]) -> Result<String, Unreadable> {
    let mut out = String::with_capacity(b.len() / 2);
    let mut stack: Vec<Group> = Vec::new();
    let mut g = Group { skip: false, uc: 1, font: None, fonttbl: false };
    let mut default_cp = 1252;
    let mut fonts: std::collections::HashMap<i32, i32> = Default::default();
    let mut table_font: Option<i32> = None;
    let mut pending: Vec<u8> = Vec::new(); // \'hh bytes awaiting decoding
    let mut skip_chars = 0usize; // fallback characters after \uN
    let mut destination_next = false; // just after '{' or "{\*"
    let mut ignorable = false;
    let mut i = 0usize;

    let encoding_for = |g: &Group, fonts: &std::collections::HashMap<i32, i32>, default_cp: i32| {
        g.font
            .and_then(|f| fonts.get(&f).copied())
            .and_then(codepage_encoding)
            .or_else(|| codepage_encoding(default_cp))
            .unwrap_or(encoding_rs::WINDOWS_1252)
    };
    macro_rules! flush {
        () => {
            if !pending.is_empty() {
                let enc = encoding_for(&g, &fonts, default_cp);
                let (s, _) = enc.decode_without_bom_handling(&pending);
                if !g.skip {
                    out.push_str(&s);
                }
                pending.clear();
            }
        };
    }

    while i < b.len() {
        let c = b[i];
        match c {
            b'{' => {
                flush!();
                if stack.len() > 10_000 {
                    return Err(Unreadable::new("a damaged RTF file: groups nested more than 10,000 deep"));
                }
                stack.push(g.clone());
                destination_next = true;
                ignorable = false;
                i += 1;
                continue;
            }
            b'}' => {
                flush!();
                if g.fonttbl {
                    if let Some(f) = table_font.take() {
                        fonts.entry(f).or_insert(default_cp);
                    }
                }
                g = stack.pop().unwrap_or(Group { skip: false, uc: 1, font: None, fonttbl: false });
                destination_next = false;
                i += 1;
                continue;
            }
            b'\\' => {
                i += 1;
                let Some(&n) = b.get(i) else { break };
                if n.is_ascii_alphabetic() {
                    let start = i;
                    while i < b.len() && b[i].is_ascii_alphabetic() {
                        i += 1;
                    }
                    let word = std::str::from_utf8(&b[start..i]).unwrap_or("");
                    let neg = b.get(i) == Some(&b'-');
                    if neg {
                        i += 1;
                    }
                    let ds = i;
                    while i < b.len() && b[i].is_ascii_digit() && i - ds < 10 {
                        i += 1;
                    }
                    let param: Option<i32> =
                        std::str::from_utf8(&b[ds..i]).ok().and_then(|s| s.parse::<i64>().ok()).map(|v| {
                            let v = if neg { -v } else { v };
                            v.clamp(i32::MIN as i64, i32::MAX as i64) as i32
                        });
                    if b.get(i) == Some(&b' ') {
                        i += 1;
                    }
                    let was_destination = destination_next;
                    destination_next = false;
                    // A control word ends a \u fallback (only characters and \'hh are skipped).
                    skip_chars = 0;
                    if g.fonttbl {
                        match word {
                            "f" => {
                                if let Some(f) = table_font.take() {
                                    fonts.entry(f).or_insert(default_cp);
                                }
                                table_font = param;
                            }
                            "fcharset" => {
                                if let (Some(f), Some(cp)) = (table_font, param.and_then(charset_codepage)) {
                                    fonts.insert(f, cp);
                                }
                            }
                            _ => {}
                        }
                        continue;
                    }
                    if was_destination && (SKIP.contains(&word) || ignorable) {
                        if word == "fonttbl" {
                            g.fonttbl = true;
                        }
                        flush!();
                        g.skip = true;
                        continue;
                    }
                    if word != "ansicpg" && word != "f" && word != "u" && word != "uc" && !pending.is_empty() {
                        flush!();
                    }
                    let emit = |s: &str, out: &mut String, g: &Group| {
                        if !g.skip {
                            out.push_str(s);
                        }
                    };
                    match word {
                        "ansicpg" => default_cp = param.unwrap_or(1252),
                        "f" => {
                            flush!();
                            g.font = param;
                        }
                        "uc" => g.uc = param.unwrap_or(1).clamp(0, 10) as usize,
                        "u" => {
                            flush!();
                            if let Some(v) = param {
                                let v = if v < 0 { v + 65536 } else { v } as u32;
                                if let Some(ch) = char::from_u32(v) {
                                    if !g.skip {
                                        out.push(ch);
                                    }
                                }
                                skip_chars = g.uc;
                            }
                        }
                        "par" | "line" | "sect" | "page" | "row" => emit("\n", &mut out, &g),
                        "tab" | "cell" => emit("\t", &mut out, &g),
                        "emdash" => emit("\u{2014}", &mut out, &g),
                        "endash" => emit("\u{2013}", &mut out, &g),
                        "bullet" => emit("\u{2022}", &mut out, &g),
                        "lquote" => emit("\u{2018}", &mut out, &g),
                        "rquote" => emit("\u{2019}", &mut out, &g),
                        "ldblquote" => emit("\u{201c}", &mut out, &g),
                        "rdblquote" => emit("\u{201d}", &mut out, &g),
                        "emspace" | "enspace" | "qmspace" => emit(" ", &mut out, &g),
                        "bin" => {
                            // \binN: N raw bytes follow.
                            i = i.saturating_add(param.unwrap_or(0).max(0) as usize).min(b.len());
                        }
                        _ => {}
                    }
                    continue;
                }
                // Control symbols.
                i += 1;
                match n {
                    b'\'' => {
                        let hex = b.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                        if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                            i += 2;
                            if skip_chars > 0 {
                                skip_chars -= 1;
                            } else if !g.skip {
                                pending.push(v);
                            }
                        }
                    }
                    b'*' => {
                        ignorable = true;
                        // `{\*\dest ...}`: unknown ignorable destinations are skipped.
                        destination_next = true;
                        continue;
                    }
                    b'~' => {
                        flush!();
                        if !g.skip {
                            out.push('\u{a0}');
                        }
                    }
                    b'_' => {
                        flush!();
                        if !g.skip {
                            out.push('-');
                        }
                    }
                    b'-' => {}
                    b'\n' | b'\r' => {
                        flush!();
                        if !g.skip {
                            out.push('\n');
                        }
                    }
                    b'\\' | b'{' | b'}' => {
                        flush!();
                        if skip_chars > 0 {
                            skip_chars -= 1;
                        } else if !g.skip {
                            out.push(n as char);
                        }
                    }
                    _ => {}
                }
                destination_next = false;
                continue;
            }
            b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            _ => {
                destination_next = false;
                if skip_chars > 0 {
                    skip_chars -= 1;
                    i += 1;
                    continue;
                }
                if g.skip {
                    i += 1;
                    continue;
                }
                if c >= 0x80 {
                    // Raw 8-bit text: in the code page, like \'hh.
                    pending.push(c);
                } else {
                    flush!();
                    out.push(c as char);
                }
                i += 1;
            }
        }
    }
    flush!();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_code_pages_and_unicode() {
        let rtf = br"{\rtf1\ansi\ansicpg1252{\fonttbl{\f0\fswiss Arial;}{\f1\fcharset204 Times;}}{\colortbl;\red0\green0\blue0;}
{\*\generator Msftedit;}\f0 Caf\'e9 \b bold\b0\par
{\f1 \'cf\'f0\'e8\'e2\'e5\'f2}\par
\u8364?uro and \{braces\}\tab tab\par
{\field{\*\fldinst HYPERLINK x}{\fldrslt link text}}}";
        let t = to_text(rtf).unwrap();
        assert_eq!(t, "Café bold\nПривет\n€uro and {braces}\ttab\nlink text");
    }
}
