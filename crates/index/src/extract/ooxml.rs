//! Word (DOCX) and PowerPoint (PPTX) by hand with zip + quick-xml (notes §3.1: docx-rs failed
//! or panicked on 19 of 18+1 valid files; office_oxide dropped text boxes).
//!
//! - **DOCX**: a page is a section (`w:sectPr`), as the issue asks; the CUAD data room's DOCX
//!   files record no rendered page breaks (LibreOffice writes none), so sections are what the
//!   file knows. Body text, tables row by row, text boxes (`w:txbxContent`, the `mc:Fallback`
//!   copy skipped), headers and footers (each part once, on the first section that uses it),
//!   footnotes and comments on the section that references them, endnotes on the last.
//! - **PPTX**: a page is a slide, in presentation order (`p:sldIdLst` through the relationships,
//!   not the part names: `slide10.xml` sorts before `slide2.xml`), with its speaker notes and
//!   comments.

use std::collections::{HashMap, HashSet};

use super::xml::{attr, walk, Ev, Flow};
use super::zipcheck::Archive;
use super::{Extracted, Kind, Options, Outcome, Unreadable};

/// A part's relationships: id -> (type, resolved target part name).
pub struct Rels(HashMap<String, (String, String)>);

impl Rels {
    pub fn of(zip: &mut Archive<'_>, part: &str) -> Result<Rels, Unreadable> {
        let (dir, file) = part.rsplit_once('/').unwrap_or(("", part));
        let rels_name = if dir.is_empty() { format!("_rels/{file}.rels") } else { format!("{dir}/_rels/{file}.rels") };
        let mut map = HashMap::new();
        if let Some(xml) = zip.read_string(&rels_name)? {
            walk(&xml, &rels_name, |ev| {
                if let Ev::Start(b"Relationship", e) = ev {
                    if attr(e, b"TargetMode").as_deref() == Some("External") {
                        return;
                    }
                    if let (Some(id), Some(target)) = (attr(e, b"Id"), attr(e, b"Target")) {
                        let kind = attr(e, b"Type").unwrap_or_default();
                        map.insert(id, (kind, resolve(dir, &target)));
                    }
                }
            })?;
        }
        Ok(Rels(map))
    }

    pub fn target(&self, id: &str) -> Option<&str> {
        self.0.get(id).map(|(_, t)| t.as_str())
    }

    /// Targets whose relationship type ends with `suffix` ("/notesSlide", "/comments").
    pub fn of_type<'a>(&'a self, suffix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.values().filter(move |(k, _)| k.ends_with(suffix)).map(|(_, t)| t.as_str())
    }
}

/// A relationship target relative to the part's folder, normalised ("../notesSlides/x.xml").
fn resolve(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') { Vec::new() } else { dir.split('/').collect() };
    for seg in target.trim_start_matches('/').split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.retain(|p| !p.is_empty());
    parts.join("/")
}

/// The package's main part, from `_rels/.rels` (`officeDocument`), or `default`.
fn main_part(zip: &mut Archive<'_>, default: &str) -> Result<String, Unreadable> {
    let rels = Rels::of(zip, "")?;
    let main = rels.of_type("/officeDocument").next().map(str::to_string);
    Ok(main.unwrap_or_else(|| default.to_string()))
}

#[derive(Default)]
struct Section {
    text: String,
    headers: Vec<String>,
    footers: Vec<String>,
    footnotes: Vec<String>,
    endnotes: Vec<String>,
    comments: Vec<String>,
}

pub fn docx(bytes: &[u8], options: &Options) -> Outcome {
    let mut zip = Archive::open(bytes, &options.zip)?;
    let main = main_part(&mut zip, "word/document.xml")?;
    let doc = zip.require(&main, "Word document")?;
    let rels = Rels::of(&mut zip, &main)?;

    // The body, cut into sections.
    let mut sections: Vec<Section> = Vec::new();
    let mut current = Section::default();
    let mut flow = Flow::ooxml();
    let mut in_ppr = 0usize;
    let mut in_sectpr = 0usize;
    let mut section_ends_with_paragraph = false;
    let mut footnote_no = 0usize;
    let mut endnote_no = 0usize;
    let mut footnote_marks: HashMap<String, usize> = HashMap::new();
    let mut endnote_marks: HashMap<String, usize> = HashMap::new();
    walk(&doc, &main, |ev| match ev {
        Ev::Start(name, e) => {
            if flow.skipping() {
                flow.start(name, e);
                return;
            }
            match name {
                b"pPr" => in_ppr += 1,
                b"sectPr" => {
                    in_sectpr += 1;
                    if in_ppr > 0 {
                        section_ends_with_paragraph = true;
                    }
                }
                b"headerReference" | b"footerReference" if in_sectpr > 0 => {
                    if let Some(target) = attr(e, b"id").and_then(|id| rels.target(&id).map(str::to_string)) {
                        if name == b"headerReference" {
                            current.headers.push(target);
                        } else {
                            current.footers.push(target);
                        }
                    }
                }
                b"footnoteReference" | b"endnoteReference" => {
                    if let Some(id) = attr(e, b"id") {
                        if name == b"footnoteReference" {
                            footnote_no += 1;
                            footnote_marks.insert(id.clone(), footnote_no);
                            flow.write(&format!("[{footnote_no}]"));
                            current.footnotes.push(id);
                        } else {
                            endnote_no += 1;
                            endnote_marks.insert(id.clone(), endnote_no);
                            flow.write(&format!("[{}]", roman(endnote_no)));
                            current.endnotes.push(id);
                        }
                    }
                }
                b"commentReference" => {
                    if let Some(id) = attr(e, b"id") {
                        current.comments.push(id);
                    }
                }
                b"delText" | b"instrText" => flow.skip_element(),
                _ => flow.start(name, e),
            }
        }
        Ev::End(name) => {
            if flow.skipping() {
                flow.end(name);
                return;
            }
            match name {
                b"pPr" => in_ppr = in_ppr.saturating_sub(1),
                b"sectPr" => in_sectpr = in_sectpr.saturating_sub(1),
                b"p" => {
                    flow.end(name);
                    if section_ends_with_paragraph {
                        section_ends_with_paragraph = false;
                        current.text = flow.take_out();
                        sections.push(std::mem::take(&mut current));
                    }
                }
                _ => flow.end(name),
            }
        }
        Ev::Text(t) => flow.text(t),
    })?;
    current.text = flow.finish();
    sections.push(current);

    let footnotes = notes(&mut zip, &rels, "/footnotes", "footnote")?;
    let endnotes = notes(&mut zip, &rels, "/endnotes", "endnote")?;
    let comments = notes(&mut zip, &rels, "/comments", "comment")?;

    let mut ex = Extracted::new(Kind::Docx, "docx");
    let mut parts_seen: HashSet<String> = HashSet::new();
    let mut part_text: HashMap<String, String> = HashMap::new();
    let last = sections.len() - 1;
    for (i, s) in sections.iter().enumerate() {
        let mut text = String::new();
        for h in &s.headers {
            if parts_seen.insert(h.clone()) {
                text.push_str(&part(&mut zip, h, &mut part_text)?);
            }
        }
        text.push_str(&s.text);
        for id in &s.footnotes {
            if let Some((_, t)) = footnotes.get(id) {
                text.push_str(&format!("[{}] {}", footnote_marks.get(id).copied().unwrap_or(0), t));
            }
        }
        if i == last {
            for (id, (_, t)) in endnotes.iter() {
                if let Some(n) = endnote_marks.get(id) {
                    text.push_str(&format!("[{}] {}", roman(*n), t));
                }
            }
        }
        for id in &s.comments {
            if let Some((author, t)) = comments.get(id) {
                match author {
                    Some(a) => text.push_str(&format!("Comment by {a}: {t}")),
                    None => text.push_str(&format!("Comment: {t}")),
                }
            }
        }
        for f in &s.footers {
            if parts_seen.insert(f.clone()) {
                text.push_str(&part(&mut zip, f, &mut part_text)?);
            }
        }
        ex.push((i + 1).to_string(), text);
    }
    Ok(ex)
}

/// A header or footer part's text (cached: sections share parts).
fn part(zip: &mut Archive<'_>, name: &str, cache: &mut HashMap<String, String>) -> Result<String, Unreadable> {
    if let Some(t) = cache.get(name) {
        return Ok(t.clone());
    }
    let text = match zip.read_string(name)? {
        Some(xml) => {
            let mut flow = Flow::ooxml();
            walk(&xml, name, |ev| match ev {
                Ev::Start(n, e) => flow.start(n, e),
                Ev::End(n) => flow.end(n),
                Ev::Text(t) => flow.text(t),
            })?;
            flow.finish()
        }
        None => String::new(),
    };
    cache.insert(name.to_string(), text.clone());
    Ok(text)
}

/// Footnotes, endnotes or comments: id -> (author, text), the separators left out. An ordered
/// map so endnotes come in id order.
fn notes(
    zip: &mut Archive<'_>,
    rels: &Rels,
    rel_type: &str,
    element: &str,
) -> Result<std::collections::BTreeMap<String, (Option<String>, String)>, Unreadable> {
    let mut out = std::collections::BTreeMap::new();
    let targets: Vec<String> = rels.of_type(rel_type).map(str::to_string).collect();
    for target in targets {
        let Some(xml) = zip.read_string(&target)? else { continue };
        let mut flow: Option<(String, Option<String>, Flow)> = None;
        let el = element.as_bytes();
        walk(&xml, &target, |ev| match ev {
            Ev::Start(name, e) if name == el && flow.is_none() => {
                let separator = attr(e, b"type").is_some_and(|t| t != "normal");
                let id = attr(e, b"id").unwrap_or_default();
                if !separator {
                    flow = Some((id, attr(e, b"author"), Flow::ooxml()));
                }
            }
            Ev::End(name) if name == el => {
                if let Some((id, author, f)) = flow.take() {
                    let text = f.finish();
                    // Collapse a note's paragraphs onto as few lines as it has.
                    out.insert(id, (author, text));
                }
            }
            Ev::Start(name, e) => {
                if let Some((_, _, f)) = flow.as_mut() {
                    f.start(name, e)
                }
            }
            Ev::End(name) => {
                if let Some((_, _, f)) = flow.as_mut() {
                    f.end(name)
                }
            }
            Ev::Text(t) => {
                if let Some((_, _, f)) = flow.as_mut() {
                    f.text(t)
                }
            }
        })?;
    }
    Ok(out)
}

/// Word's default endnote numbering: i, ii, iii, ...
fn roman(mut n: usize) -> String {
    const TABLE: [(usize, &str); 13] = [
        (1000, "m"),
        (900, "cm"),
        (500, "d"),
        (400, "cd"),
        (100, "c"),
        (90, "xc"),
        (50, "l"),
        (40, "xl"),
        (10, "x"),
        (9, "ix"),
        (5, "v"),
        (4, "iv"),
        (1, "i"),
    ];
    let mut s = String::new();
    for (v, r) in TABLE {
        while n >= v {
            s.push_str(r);
            n -= v;
        }
    }
    s
}

pub fn pptx(bytes: &[u8], options: &Options) -> Outcome {
    let mut zip = Archive::open(bytes, &options.zip)?;
    let main = main_part(&mut zip, "ppt/presentation.xml")?;
    let presentation = zip.require(&main, "PowerPoint presentation")?;
    let rels = Rels::of(&mut zip, &main)?;
    let mut slide_ids: Vec<String> = Vec::new();
    let mut in_list = false;
    walk(&presentation, &main, |ev| match ev {
        Ev::Start(b"sldIdLst", _) => in_list = true,
        Ev::End(b"sldIdLst") => in_list = false,
        Ev::Start(b"sldId", e) if in_list => {
            // `id` is the numeric slide id; the relationship is the prefixed `r:id`.
            let rid = e
                .attributes()
                .flatten()
                .find(|a| a.key.prefix().is_some() && a.key.local_name().as_ref() == "id")
                .map(|a| a.value.to_string());
            if let Some(rid) = rid {
                slide_ids.push(rid);
            }
        }
        _ => {}
    })?;
    let mut ex = Extracted::new(Kind::Pptx, "pptx");
    let slides: Vec<String> = slide_ids.iter().filter_map(|id| rels.target(id).map(str::to_string)).collect();
    if slides.len() < slide_ids.len() {
        ex.warnings.push(format!("{} slides listed in the presentation are missing", slide_ids.len() - slides.len()));
    }
    for (i, slide) in slides.iter().enumerate() {
        let Some(xml) = zip.read_string(slide)? else {
            ex.warnings.push(format!("slide {} ({slide}) is missing from the file", i + 1));
            ex.push((i + 1).to_string(), "");
            continue;
        };
        let mut text = drawing_text(&xml, slide)?;
        let slide_rels = Rels::of(&mut zip, slide)?;
        let notes: Vec<String> = slide_rels.of_type("/notesSlide").map(str::to_string).collect();
        for n in notes {
            if let Some(xml) = zip.read_string(&n)? {
                let t = drawing_text(&xml, &n)?;
                if !t.trim().is_empty() {
                    text.push_str("Speaker notes:\n");
                    text.push_str(&t);
                }
            }
        }
        let comments: Vec<String> = slide_rels.of_type("/comments").map(str::to_string).collect();
        for c in comments {
            if let Some(xml) = zip.read_string(&c)? {
                text.push_str(&comment_text(&xml, &c)?);
            }
        }
        ex.push((i + 1).to_string(), text);
    }
    Ok(ex)
}

/// DrawingML text of a slide or notes page: shapes' paragraphs, tables row by row. Fields
/// (`a:fld`: the slide number on a notes page, dates) are left out.
fn drawing_text(xml: &str, what: &str) -> Result<String, Unreadable> {
    let mut flow = Flow::ooxml();
    walk(xml, what, |ev| match ev {
        Ev::Start(b"fld", _) if !flow.skipping() => flow.skip_element(),
        Ev::Start(n, e) => flow.start(n, e),
        Ev::End(n) => flow.end(n),
        Ev::Text(t) => flow.text(t),
    })?;
    Ok(flow.finish())
}

/// Legacy comments (`p:cm` / `p:text`) and modern ones (`a:t` in their text body).
fn comment_text(xml: &str, what: &str) -> Result<String, Unreadable> {
    let mut out = String::new();
    let mut in_text = false;
    let mut flow = Flow::ooxml();
    walk(xml, what, |ev| match ev {
        Ev::Start(b"text", _) => in_text = true,
        Ev::End(b"text") => {
            in_text = false;
            out.push('\n');
        }
        Ev::Text(t) if in_text => {
            if out.is_empty() || out.ends_with('\n') {
                out.push_str("Comment: ");
            }
            out.push_str(t)
        }
        Ev::Start(n, e) => flow.start(n, e),
        Ev::End(n) => flow.end(n),
        Ev::Text(t) => flow.text(t),
    })?;
    let modern = flow.finish();
    for line in modern.lines().filter(|l| !l.trim().is_empty()) {
        out.push_str("Comment: ");
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_resolve_against_the_part_folder() {
        assert_eq!(resolve("ppt/slides", "../notesSlides/notesSlide1.xml"), "ppt/notesSlides/notesSlide1.xml");
        assert_eq!(resolve("ppt", "slides/slide2.xml"), "ppt/slides/slide2.xml");
        assert_eq!(resolve("word", "/word/footer1.xml"), "word/footer1.xml");
        assert_eq!(resolve("", "word/document.xml"), "word/document.xml");
        assert_eq!(roman(4), "iv");
        assert_eq!(roman(19), "xix");
    }
}
