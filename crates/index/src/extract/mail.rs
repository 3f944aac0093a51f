//! Mail: EML messages and MBOX mailboxes with mail-parser 0.11 (`full_encoding` for legacy
//! charsets; 1.0 needs rustc 1.98, notes §3.5).
//!
//! A message is a page: its headers (From, To, Cc, Date, Subject) and its text body (an HTML-only
//! body through html2text). Each attachment follows as pages of its own, named after it, read
//! by the same extractors recursively (a PDF attached to a mail inside an mbox has its pages),
//! down to [`super::Options::max_depth`]. In an mbox, pages are labelled "message N".

use std::io::Cursor;

use mail_parser::{Address, Message, MessageParser, MimeHeaders};

use super::{extract_bytes, html, pdfium, Extracted, Kind, Options, Outcome, Unreadable};

pub fn eml(bytes: &[u8], options: &Options, pdfium: Option<&pdfium::Engine>, depth: u32) -> Outcome {
    let msg = parse(bytes)?;
    let mut ex = Extracted::new(Kind::Eml, "mail-parser 0.11");
    message_pages(&msg, "", &mut ex, options, pdfium, depth);
    Ok(ex)
}

pub fn mbox(bytes: &[u8], options: &Options, pdfium: Option<&pdfium::Engine>, depth: u32) -> Outcome {
    let mut ex = Extracted::new(Kind::Mbox, "mail-parser 0.11 (mbox)");
    for (i, item) in mail_parser::mailbox::mbox::MessageIterator::new(Cursor::new(bytes)).enumerate() {
        let label = format!("message {}", i + 1);
        match item {
            Ok(m) => match parse(m.contents()) {
                Ok(msg) => message_pages(&msg, &label, &mut ex, options, pdfium, depth),
                Err(reason) => {
                    ex.warnings.push(format!("{label}: {reason}"));
                    ex.push(label, "");
                }
            },
            Err(e) => {
                ex.warnings.push(format!("the mailbox could not be read past {label}: {e}"));
                break;
            }
        }
    }
    if ex.pages.is_empty() {
        return Err(Unreadable::new("an empty mailbox (no messages)"));
    }
    Ok(ex)
}

fn parse(bytes: &[u8]) -> Result<Message<'_>, Unreadable> {
    // An envelope line ("From sender date") before the headers is mbox framing, not a header.
    let bytes = if bytes.starts_with(b"From ") {
        bytes.iter().position(|&b| b == b'\n').map_or(bytes, |i| &bytes[i + 1..])
    } else {
        bytes
    };
    MessageParser::default()
        .parse(bytes)
        .ok_or_else(|| Unreadable::new("a damaged mail message (no headers could be read)"))
}

fn addresses(a: Option<&Address<'_>>) -> Option<String> {
    let a = a?;
    let list: Vec<String> = a
        .iter()
        .map(|addr| match (addr.name(), addr.address()) {
            (Some(n), Some(e)) => format!("{n} <{e}>"),
            (None, Some(e)) => e.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!list.is_empty()).then(|| list.join(", "))
}

/// The message's page, then its attachments' pages. `label` is the mbox position ("message 3")
/// or empty for a single message.
fn message_pages(
    msg: &Message<'_>,
    label: &str,
    ex: &mut Extracted,
    options: &Options,
    pdfium: Option<&pdfium::Engine>,
    depth: u32,
) {
    let mut text = String::new();
    for (name, value) in [
        ("From", addresses(msg.from())),
        ("To", addresses(msg.to())),
        ("Cc", addresses(msg.cc())),
        ("Date", msg.date().map(|d| d.to_rfc822())),
        ("Subject", msg.subject().map(str::to_string)),
    ] {
        if let Some(v) = value {
            text.push_str(&format!("{name}: {v}\n"));
        }
    }
    text.push('\n');
    for part in msg.text_bodies() {
        let body = match part.text_contents() {
            Some(t) if part.is_text_html() => html::render(t),
            Some(t) => t.to_string(),
            None => String::from_utf8_lossy(part.contents()).into_owned(),
        };
        text.push_str(&body);
        if !body.ends_with('\n') {
            text.push('\n');
        }
    }
    let page_label = if label.is_empty() { "message".to_string() } else { label.to_string() };
    ex.push(page_label.clone(), text);

    for (i, att) in msg.attachments().enumerate() {
        let name = att.attachment_name().map(str::to_string).unwrap_or_else(|| format!("attachment {}", i + 1));
        let att_label = if label.is_empty() { name.clone() } else { format!("{label}: {name}") };
        if depth + 1 > options.max_depth {
            ex.warnings
                .push(format!("{att_label} was not read: attachments are read {} levels deep", options.max_depth));
            continue;
        }
        if let Some(inner) = att.message() {
            message_pages(inner, &att_label, ex, options, pdfium, depth + 1);
            continue;
        }
        // Inline text parts that are not bodies (a text/plain attachment) read as text.
        let outcome = if att.is_text() && !att.is_text_html() {
            let mut sub = Extracted::new(Kind::Text, "text");
            sub.push("1", att.text_contents().map(str::to_string).unwrap_or_default());
            Ok(sub)
        } else {
            extract_bytes(att.contents(), &name, options, pdfium, depth + 1)
        };
        match outcome {
            Ok(sub) => {
                let many = sub.pages.len() > 1;
                for w in sub.warnings {
                    ex.warnings.push(format!("{att_label}: {w}"));
                }
                for p in sub.pages {
                    let l = if many { format!("{att_label} p. {}", p.label) } else { att_label.clone() };
                    let page = ex.push(l, p.text);
                    page.note = p.note;
                    page.needs_ocr = false;
                }
            }
            Err(reason) => ex.warnings.push(format!("{att_label} was not read: {reason}")),
        }
    }
}
