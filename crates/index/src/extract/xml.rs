//! A small layer over quick-xml for the Office and OpenDocument readers: elements by local name
//! (prefixes vary between producers: Strict OOXML, LibreOffice, Word), entities resolved,
//! empty elements reported as a start followed by an end, and a nesting cap.
//!
//! [`Flow`] turns the paragraph/run/table structure both families share into lines: paragraphs
//! end lines, table rows become lines with cells separated by tabs, text boxes and notes become
//! lines of their own.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};

use super::Unreadable;

/// Deeper nesting than this is refused: no real document comes close, and a hostile one could
/// make every consumer of the tree slow.
const MAX_DEPTH: usize = 4096;

pub enum Ev<'a, 'x> {
    Start(&'a [u8], &'a BytesStart<'x>),
    End(&'a [u8]),
    Text(&'a str),
}

/// Walks `xml`, calling `f` for each element start, end and text. `what` names the part for
/// errors ("word/document.xml").
pub fn walk(xml: &str, what: &str, mut f: impl FnMut(Ev<'_, '_>)) -> Result<(), Unreadable> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let config = reader.config_mut();
    config.check_end_names = false;
    config.expand_empty_elements = false;
    let mut depth = 0usize;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| Unreadable::new(format!("damaged XML in {what} at byte {}: {e}", reader.error_position())))?;
        match ev {
            Event::Start(e) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Unreadable::new(format!("{what} is nested more than {MAX_DEPTH} elements deep")));
                }
                let local = e.local_name();
                f(Ev::Start(local.as_ref().as_bytes(), &e));
            }
            Event::Empty(e) => {
                let local = e.local_name();
                f(Ev::Start(local.as_ref().as_bytes(), &e));
                f(Ev::End(local.as_ref().as_bytes()));
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                let local = e.local_name();
                f(Ev::End(local.as_ref().as_bytes()));
            }
            Event::Text(t) => {
                let s = t.xml10_content();
                f(Ev::Text(&s));
            }
            Event::CData(t) => {
                let s = t.xml10_content();
                f(Ev::Text(&s));
            }
            Event::GeneralRef(r) => {
                let s: Cow<str> = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string().into(),
                    _ => match r.as_ref() {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        "nbsp" => "\u{a0}".into(),
                        _ => "".into(),
                    },
                };
                f(Ev::Text(&s));
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

/// The value of the attribute whose local name is `name`.
pub fn attr(e: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref().as_bytes() == name)
        .map(|a| quick_xml::escape::unescape(&a.value).map(|v| v.into_owned()).unwrap_or_else(|_| a.value.to_string()))
}

/// One level of output: lines written so far and the line being built.
#[derive(Default)]
struct Frame {
    out: String,
    line: String,
    table: usize,
    para: usize,
}

/// Paragraphs, runs and tables into lines; see the module docs. The element names are local
/// names; the caller says which elements carry text ([`Flow::text_in`]).
pub struct Flow {
    frames: Vec<Frame>,
    /// Depth inside elements whose text is not shown (mc:Fallback duplicates mc:Choice).
    skip: usize,
    run: usize,
    in_text: usize,
    /// Text appears only inside `t` elements (WordprocessingML, DrawingML) rather than anywhere
    /// inside a paragraph (OpenDocument).
    t_elements: bool,
}

impl Flow {
    /// A flow for OOXML (`w:t`, `a:t` carry the text).
    pub fn ooxml() -> Flow {
        Flow { frames: vec![Frame::default()], skip: 0, run: 0, in_text: 0, t_elements: true }
    }

    /// A flow for OpenDocument (text anywhere inside `text:p` / `text:h`).
    pub fn odf() -> Flow {
        Flow { frames: vec![Frame::default()], skip: 0, run: 0, in_text: 0, t_elements: false }
    }

    fn top(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("the root frame is never popped")
    }

    pub fn skipping(&self) -> bool {
        self.skip > 0
    }

    /// Ignores everything until the matching end (call from the caller's start handler).
    pub fn skip_element(&mut self) {
        self.skip += 1;
    }

    /// Starts a separate output (a text box, a note, a comment): its lines do not mix with the
    /// paragraph that anchors it. [`Flow::pop`] returns them.
    pub fn push(&mut self) {
        self.frames.push(Frame::default());
    }

    pub fn pop(&mut self) -> String {
        if self.frames.len() == 1 {
            return String::new();
        }
        let mut f = self.frames.pop().expect("checked");
        if !f.line.trim().is_empty() {
            f.out.push_str(f.line.trim_end());
            f.out.push('\n');
        }
        f.out
    }

    /// Writes text into the current line (markers such as "[1]").
    pub fn write(&mut self, s: &str) {
        self.top().line.push_str(s);
    }

    /// Whether the line being built is empty (for page breaks between paragraphs).
    pub fn line_is_empty(&self) -> bool {
        self.frames.last().is_some_and(|f| f.line.trim().is_empty())
    }

    pub fn start(&mut self, name: &[u8], e: &BytesStart<'_>) {
        if self.skip > 0 {
            self.skip += 1;
            return;
        }
        match name {
            b"Fallback" => self.skip = 1,
            b"t" if self.t_elements => self.in_text += 1,
            b"r" => self.run += 1,
            b"p" | b"h" => self.top().para += 1,
            b"tab" if self.run > 0 || !self.t_elements => self.write("\t"),
            b"br" | b"cr" | b"line-break" => self.soft_break(),
            b"noBreakHyphen" => self.write("-"),
            b"s" if !self.t_elements => {
                let n = attr(e, b"c").and_then(|c| c.parse::<usize>().ok()).unwrap_or(1).min(1000);
                let spaces = " ".repeat(n);
                self.write(&spaces);
            }
            b"tbl" | b"table" => self.top().table += 1,
            b"txbxContent" | b"text-box" => self.push(),
            _ => {}
        }
    }

    pub fn end(&mut self, name: &[u8]) {
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        match name {
            b"t" if self.t_elements => self.in_text = self.in_text.saturating_sub(1),
            b"r" => self.run = self.run.saturating_sub(1),
            b"p" | b"h" => {
                let top = self.top();
                top.para = top.para.saturating_sub(1);
                self.end_paragraph();
            }
            b"tc" | b"table-cell" | b"covered-table-cell" => {
                let line = &mut self.top().line;
                let trimmed = line.trim_end_matches(' ').len();
                line.truncate(trimmed);
                line.push('\t');
            }
            b"tr" | b"table-row" => {
                let f = self.top();
                let trimmed = f.line.trim_end().len();
                f.line.truncate(trimmed);
                self.flush();
            }
            b"tbl" | b"table" => {
                let top = self.top();
                top.table = top.table.saturating_sub(1);
            }
            b"txbxContent" | b"text-box" => {
                let text = self.pop();
                self.top().out.push_str(&text);
            }
            _ => {}
        }
    }

    pub fn text(&mut self, s: &str) {
        if self.skip > 0 {
            return;
        }
        let shown = if self.t_elements { self.in_text > 0 } else { self.frames.last().is_some_and(|f| f.para > 0) };
        if shown {
            if self.t_elements {
                self.write(s);
            } else {
                // OpenDocument collapses white space in text (spaces come as text:s).
                let collapsed: String = collapse_ws(s);
                self.write(&collapsed);
            }
        }
    }

    fn soft_break(&mut self) {
        if self.top().table > 0 {
            self.write(" ");
        } else {
            self.flush();
        }
    }

    fn end_paragraph(&mut self) {
        let f = self.top();
        if f.table > 0 {
            if !f.line.is_empty() && !f.line.ends_with([' ', '\t']) {
                f.line.push(' ');
            }
        } else {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let f = self.top();
        let line = std::mem::take(&mut f.line);
        f.out.push_str(line.trim_end());
        f.out.push('\n');
    }

    /// Everything written, the line being built included.
    pub fn finish(mut self) -> String {
        while self.frames.len() > 1 {
            let text = self.pop();
            self.top().out.push_str(&text);
        }
        let mut f = self.frames.pop().expect("root");
        if !f.line.trim().is_empty() {
            f.out.push_str(f.line.trim_end());
            f.out.push('\n');
        }
        f.out
    }

    /// Takes the root frame's finished lines so far (for page boundaries), leaving the line
    /// being built.
    pub fn take_out(&mut self) -> String {
        std::mem::take(&mut self.frames[0].out)
    }
}

fn collapse_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c == ' ' || c == '\n' || c == '\r' || c == '\t' {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    out
}
