//! OpenDocument text (ODT), presentations (ODP) and spreadsheets (ODS), from `content.xml`
//! (and `styles.xml` for headers and footers) with quick-xml.
//!
//! - **ODT**: pages are the pages LibreOffice laid out when it saved the file
//!   (`text:soft-page-break`); a file without them is one page. Footnotes and comments come at
//!   the end of the page that cites them; the master page's header opens page 1 and its footer
//!   closes the last page (read once, not once per page, so a grep finds them once).
//! - **ODP**: a page per `draw:page`, in document order, with its speaker notes.
//! - **ODS**: a page per table, named after it; read as a stream (repeated rows and cells are
//!   expanded only where they hold text), so `table:number-columns-repeated="16384"` costs
//!   nothing. calamine's ODS reader builds a dense range instead (notes §3.2).

use super::sheet::Sheet;
use super::xml::{attr, walk, Ev, Flow};
use super::zipcheck::Archive;
use super::{Extracted, Kind, Options, Outcome, Unreadable};

pub fn odt(bytes: &[u8], options: &Options) -> Outcome {
    let mut zip = Archive::open(bytes, &options.zip)?;
    let content = zip.require("content.xml", "OpenDocument text")?;
    let (header, footer) = match zip.read_string("styles.xml")? {
        Some(styles) => headers_footers(&styles)?,
        None => (String::new(), String::new()),
    };
    let mut flow = Flow::odf();
    let mut in_body = false;
    let mut pages: Vec<String> = Vec::new();
    let mut extras: Vec<String> = Vec::new(); // notes and comments of the page being read
    let mut page_extras: Vec<String> = Vec::new();
    let mut pending_break = false;
    let mut depth_note = 0usize;
    let mut in_citation = false;
    let mut annotation: Option<Option<String>> = None; // Some(author) while inside one
    let mut in_creator = false;
    let mut author = String::new();
    let mut skip_meta = 0usize;
    walk(&content, "content.xml", |ev| match ev {
        Ev::Start(name, e) => {
            if !in_body {
                if name == b"text" {
                    in_body = true;
                }
                return;
            }
            if flow.skipping() {
                flow.start(name, e);
                return;
            }
            if skip_meta > 0 {
                skip_meta += 1;
                return;
            }
            match name {
                b"tracked-changes" | b"sequence-decls" | b"variable-decls" | b"user-field-decls" => flow.skip_element(),
                b"soft-page-break" => {
                    if flow.line_is_empty() {
                        pages.push(flow.take_out());
                        page_extras.push(std::mem::take(&mut extras).concat());
                    } else {
                        pending_break = true;
                    }
                }
                b"note-citation" => in_citation = true,
                b"note-body" => {
                    depth_note += 1;
                    flow.push();
                }
                b"annotation" => {
                    annotation = Some(None);
                    author.clear();
                    flow.push();
                }
                b"creator" if annotation.is_some() => in_creator = true,
                b"date" if annotation.is_some() => skip_meta = 1,
                _ => flow.start(name, e),
            }
        }
        Ev::End(name) => {
            if !in_body {
                return;
            }
            if flow.skipping() {
                flow.end(name);
                return;
            }
            if skip_meta > 0 {
                skip_meta -= 1;
                return;
            }
            match name {
                b"text" if depth_note == 0 && annotation.is_none() => in_body = false,
                b"note-citation" => in_citation = false,
                b"note-body" => {
                    depth_note -= 1;
                    let text = flow.pop();
                    let mark = extras.len() + 1;
                    extras.push(format!("[{mark}] {text}"));
                }
                b"annotation" => {
                    let text = flow.pop();
                    let who = if author.trim().is_empty() { String::new() } else { format!(" by {}", author.trim()) };
                    extras.push(format!("Comment{who}: {text}"));
                    annotation = None;
                }
                b"creator" => in_creator = false,
                b"p" | b"h" => {
                    flow.end(name);
                    if pending_break && flow.line_is_empty() {
                        pending_break = false;
                        pages.push(flow.take_out());
                        page_extras.push(std::mem::take(&mut extras).concat());
                    }
                }
                _ => flow.end(name),
            }
        }
        Ev::Text(t) => {
            if !in_body || skip_meta > 0 {
                return;
            }
            if in_creator {
                author.push_str(t);
            } else if in_citation {
                flow.write(&format!("[{}]", t.trim()));
            } else {
                flow.text(t)
            }
        }
    })?;
    pages.push(flow.finish());
    page_extras.push(extras.concat());
    let mut ex = Extracted::new(Kind::Odt, "odt");
    let last = pages.len() - 1;
    for (i, (text, extra)) in pages.into_iter().zip(page_extras).enumerate() {
        let mut page = String::new();
        if i == 0 {
            page.push_str(&header);
        }
        page.push_str(&text);
        page.push_str(&extra);
        if i == last {
            page.push_str(&footer);
        }
        ex.push((i + 1).to_string(), page);
    }
    Ok(ex)
}

/// The master pages' headers and footers (each distinct text once).
fn headers_footers(styles: &str) -> Result<(String, String), Unreadable> {
    let mut header = String::new();
    let mut footer = String::new();
    let mut current: Option<(bool, Flow)> = None;
    walk(styles, "styles.xml", |ev| match ev {
        Ev::Start(name, _)
            if current.is_none()
                && matches!(
                    name,
                    b"header" | b"header-left" | b"header-first" | b"footer" | b"footer-left" | b"footer-first"
                ) =>
        {
            current = Some((name.starts_with(b"header"), Flow::odf()));
        }
        Ev::End(b"header" | b"header-left" | b"header-first" | b"footer" | b"footer-left" | b"footer-first") => {
            if let Some((is_header, flow)) = current.take() {
                let text = flow.finish();
                let target = if is_header { &mut header } else { &mut footer };
                if !text.trim().is_empty() && !target.contains(&text) {
                    target.push_str(&text);
                }
            }
        }
        Ev::Start(name, e) => {
            if let Some((_, f)) = current.as_mut() {
                f.start(name, e)
            }
        }
        Ev::End(name) => {
            if let Some((_, f)) = current.as_mut() {
                f.end(name)
            }
        }
        Ev::Text(t) => {
            if let Some((_, f)) = current.as_mut() {
                f.text(t)
            }
        }
    })?;
    Ok((header, footer))
}

pub fn odp(bytes: &[u8], options: &Options) -> Outcome {
    let mut zip = Archive::open(bytes, &options.zip)?;
    let content = zip.require("content.xml", "OpenDocument presentation")?;
    let mut ex = Extracted::new(Kind::Odp, "odp");
    let mut slide: Option<Flow> = None;
    let mut in_notes = false;
    walk(&content, "content.xml", |ev| match ev {
        Ev::Start(b"page", _) if slide.is_none() => slide = Some(Flow::odf()),
        Ev::End(b"page") if !in_notes => {
            if let Some(f) = slide.take() {
                ex.push((ex.pages.len() + 1).to_string(), f.finish());
            }
        }
        Ev::Start(b"notes", _) => {
            if let Some(f) = slide.as_mut() {
                in_notes = true;
                f.push();
            }
        }
        Ev::End(b"notes") => {
            if let Some(f) = slide.as_mut() {
                in_notes = false;
                let notes = f.pop();
                if !notes.trim().is_empty() {
                    f.write("Speaker notes:");
                    f.end(b"p");
                    for line in notes.lines() {
                        f.write(line);
                        f.end(b"p");
                    }
                }
            }
        }
        Ev::Start(b"page-thumbnail", _) => {}
        Ev::Start(n, e) => {
            if let Some(f) = slide.as_mut() {
                f.start(n, e)
            }
        }
        Ev::End(n) => {
            if let Some(f) = slide.as_mut() {
                f.end(n)
            }
        }
        Ev::Text(t) => {
            if let Some(f) = slide.as_mut() {
                f.text(t)
            }
        }
    })?;
    Ok(ex)
}

/// How many times one empty or repeated cell/row is expanded at most: the rest of a repeat is
/// layout (LibreOffice writes `number-columns-repeated="1024"` to the sheet's edge).
const MAX_REPEAT: usize = 1000;

pub fn ods(bytes: &[u8], options: &Options) -> Outcome {
    let mut zip = Archive::open(bytes, &options.zip)?;
    let content = zip.require("content.xml", "OpenDocument spreadsheet")?;
    let mut ex = Extracted::new(Kind::Ods, "ods");
    let mut sheet: Option<(String, Sheet)> = None;
    let mut row: Vec<(usize, String)> = Vec::new(); // (repeat, text) cells of the current row
    let mut row_repeat = 1usize;
    let mut cell: Option<(usize, String, usize)> = None; // (repeat, text, paragraphs)
    let mut in_p = 0usize;
    let mut cells_budget = options.max_cells;
    let mut cut = false;
    let mut annotation = 0usize;
    walk(&content, "content.xml", |ev| match ev {
        Ev::Start(b"table", e) if sheet.is_none() => {
            let name = attr(e, b"name").unwrap_or_else(|| format!("Sheet{}", ex.pages.len() + 1));
            sheet = Some((name, Sheet::default()));
        }
        Ev::End(b"table") => {
            if let Some((name, s)) = sheet.take() {
                ex.push(name, s.finish());
            }
        }
        Ev::Start(b"table-row", e) => {
            row.clear();
            row_repeat = attr(e, b"number-rows-repeated").and_then(|v| v.parse().ok()).unwrap_or(1);
        }
        Ev::End(b"table-row") => {
            if let Some((_, s)) = sheet.as_mut() {
                // Trailing empty cells are layout.
                while row.last().is_some_and(|(_, t)| t.is_empty()) {
                    row.pop();
                }
                if row.is_empty() {
                    s.skip_rows(row_repeat as u64);
                } else {
                    let mut line: Vec<String> = Vec::new();
                    for (n, t) in &row {
                        for _ in 0..(*n).min(MAX_REPEAT) {
                            line.push(t.clone());
                        }
                    }
                    for _ in 0..row_repeat.min(MAX_REPEAT) {
                        if cells_budget < line.len() as u64 {
                            cut = true;
                            return;
                        }
                        cells_budget -= line.len() as u64;
                        s.row(&line);
                    }
                }
            }
        }
        Ev::Start(b"table-cell" | b"covered-table-cell", e) => {
            let n = attr(e, b"number-columns-repeated").and_then(|v| v.parse().ok()).unwrap_or(1);
            cell = Some((n, String::new(), 0));
        }
        Ev::End(b"table-cell" | b"covered-table-cell") => {
            if let Some((n, t, _)) = cell.take() {
                row.push((n, t));
            }
        }
        Ev::Start(b"annotation", _) => annotation += 1,
        Ev::End(b"annotation") => annotation = annotation.saturating_sub(1),
        Ev::Start(b"p", _) if annotation == 0 => {
            in_p += 1;
            if let Some((_, t, paras)) = cell.as_mut() {
                if *paras > 0 {
                    t.push(' ');
                }
                *paras += 1;
            }
        }
        Ev::End(b"p") if annotation == 0 => in_p = in_p.saturating_sub(1),
        Ev::Start(b"s", _) => {
            if let Some((_, t, _)) = cell.as_mut() {
                t.push(' ');
            }
        }
        Ev::Start(b"tab", _) => {
            if let Some((_, t, _)) = cell.as_mut() {
                t.push(' ');
            }
        }
        Ev::Text(s) if in_p > 0 && annotation == 0 => {
            if let Some((_, t, _)) = cell.as_mut() {
                t.push_str(s);
            }
        }
        _ => {}
    })?;
    if cut {
        ex.warnings.push(format!("only the first {} cells were read", options.max_cells));
    }
    Ok(ex)
}
