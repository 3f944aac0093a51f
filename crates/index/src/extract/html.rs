//! HTML (the visible text, through html2text >= 0.17.4: earlier versions loop forever on some
//! CSS and panic on `rowspan=0`, notes §3.3) and EPUB (`META-INF/container.xml` -> the OPF's
//! spine -> each chapter's XHTML; the `epub` crate is GPL, notes §3.4).

use super::xml::{attr, walk, Ev};
use super::zipcheck::Archive;
use super::{text, Extracted, Kind, Options, Outcome, Unreadable};

/// HTML bytes to text: the charset from a BOM, then a `<meta charset>`, then the text pipeline.
pub fn html_text(bytes: &[u8]) -> (String, Option<String>) {
    let decoded = match declared_charset(bytes) {
        Some(enc) if encoding_rs::Encoding::for_bom(bytes).is_none() && enc != encoding_rs::UTF_8 => {
            text::decode_with(enc, bytes, "declared")
        }
        _ => text::decode(bytes),
    };
    let warning = decoded.warning();
    (render(&decoded.text), warning)
}

/// Renders HTML as plain text: no decoration, no link footnotes, no table borders, no wrapping.
pub fn render(html: &str) -> String {
    html2text::config::plain_no_decorate()
        .no_table_borders()
        .allow_width_overflow()
        .string_from_read(html.as_bytes(), 100_000)
        .unwrap_or_else(|_| strip_tags(html))
}

/// A last resort when html2text refuses: tags dropped, text kept.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// `<meta charset="...">` or `content="text/html; charset=..."` in the first 2 KiB.
fn declared_charset(bytes: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(2048)]).to_ascii_lowercase();
    let at = head.find("charset=")?;
    let rest = head[at + 8..].trim_start_matches(['"', '\'', ' ']);
    let label: String =
        rest.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':')).collect();
    encoding_rs::Encoding::for_label(label.as_bytes())
}

pub fn html(bytes: &[u8]) -> Outcome {
    let (text, warning) = html_text(bytes);
    let mut ex = Extracted::new(Kind::Html, "html2text 0.17");
    ex.warnings.extend(warning);
    ex.push("1", text);
    Ok(ex)
}

pub fn epub(bytes: &[u8], options: &Options) -> Outcome {
    let mut zip = Archive::open(bytes, &options.zip)?;
    let container = zip.require("META-INF/container.xml", "EPUB")?;
    let mut opf_path = None;
    walk(&container, "META-INF/container.xml", |ev| {
        if let Ev::Start(b"rootfile", e) = ev {
            if opf_path.is_none() {
                opf_path = attr(e, b"full-path");
            }
        }
    })?;
    let opf_path = opf_path.ok_or_else(|| Unreadable::new("a damaged EPUB: its container names no package file"))?;
    let opf = zip.require(&opf_path, "EPUB")?;
    let base = opf_path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let mut manifest: std::collections::HashMap<String, String> = Default::default();
    let mut spine: Vec<String> = Vec::new();
    walk(&opf, &opf_path, |ev| match ev {
        Ev::Start(b"item", e) => {
            if let (Some(id), Some(href)) = (attr(e, b"id"), attr(e, b"href")) {
                manifest.insert(id, href);
            }
        }
        Ev::Start(b"itemref", e) => {
            if let Some(id) = attr(e, b"idref") {
                spine.push(id);
            }
        }
        _ => {}
    })?;
    let mut ex = Extracted::new(Kind::Epub, "epub (html2text 0.17)");
    for id in &spine {
        let Some(href) = manifest.get(id) else {
            ex.warnings.push(format!("the spine names {id:?}, which the manifest does not list"));
            continue;
        };
        let href = percent_decode(href.split('#').next().unwrap_or(href));
        let path = if base.is_empty() { href.clone() } else { format!("{base}/{href}") };
        let path = normalise(&path);
        match zip.read(&path)? {
            Some(chapter) => {
                let (text, warning) = html_text(&chapter);
                ex.warnings.extend(warning.map(|w| format!("{path}: {w}")));
                ex.push((ex.pages.len() + 1).to_string(), text);
            }
            None => ex.warnings.push(format!("chapter {path} is missing from the file")),
        }
    }
    if spine.is_empty() {
        return Err(Unreadable::new("a damaged EPUB: its package lists no chapters (empty spine)"));
    }
    Ok(ex)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_text_only() {
        let t = render("<html><head><style>p{}</style><script>var x=1;</script></head><body><h1>Title</h1><p>One <b>two</b></p><table><tr><td>a</td><td>b</td></tr></table></body></html>");
        assert!(t.contains("Title") && t.contains("One two"), "{t}");
        assert!(!t.contains("var x") && !t.contains("p{}"), "{t}");
        assert_eq!(percent_decode("a%20b.xhtml"), "a b.xhtml");
        assert_eq!(normalise("OEBPS/../text/ch1.xhtml"), "text/ch1.xhtml");
    }

    #[test]
    fn declared_charsets_are_honoured() {
        let (bytes, _, _) = encoding_rs::WINDOWS_1251
            .encode("<html><head><meta charset=\"windows-1251\"></head><body>Привет</body></html>");
        let (text, _) = html_text(&bytes);
        assert!(text.contains("Привет"), "{text}");
    }
}
