//! What each format's reader keeps (issue 14, item 1), on the corpus's real files and on small
//! files built here where the corpus has no case.

use std::path::Path;

use quarry_index::extract::{Extracted, Extractor, Kind};

use crate::common::{self, documents, write_zip, Entry, CONTENT_TYPES};

fn read(ex: &mut Extractor, path: &Path) -> Extracted {
    ex.extract(path, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"))
}

fn real() -> std::path::PathBuf {
    documents().join("real")
}

#[test]
fn docx_keeps_tables_text_boxes_notes_headers_and_sections() {
    let r = real();
    let mut ex = common::extractor(&[&r]);
    let tables = read(&mut ex, &r.join("docx/mammoth__tables.docx"));
    assert_eq!(tables.text(), "Above\nTop left\tTop right\nBottom left\tBottom right\nBelow\n");
    // The text box is in mc:Choice and again in mc:Fallback: read once.
    let boxed = read(&mut ex, &r.join("docx/mammoth__text-box.docx"));
    assert_eq!(boxed.text().matches("Datum plane").count(), 1, "{:?}", boxed.text());
    let notes = read(&mut ex, &r.join("docx/mammoth__endnotes.docx"));
    assert_eq!(notes.text(), "Ouch[i].[ii]\n[i]  A tachyon walks into a bar.\n[ii]  Fin.\n");
    let headers = read(&mut ex, &r.join("docx/python-docx__doc-odd-even-hdrs.docx"));
    let t = headers.text();
    assert!(t.starts_with("Even page header.\nOdd page header.\n"), "{t:?}");
    assert!(t.contains("First Page.") && t.contains("Second Page."), "{t:?}");
    // A section is a page.
    let sections = read(&mut ex, &r.join("docx/python-docx__sct-section-props.docx"));
    let pages: Vec<(&str, &str)> = sections.pages.iter().map(|p| (p.label.as_str(), p.text.trim())).collect();
    assert_eq!(
        pages,
        [
            ("1", "Section 1 paragraph."),
            ("2", "Section 2 paragraph."),
            ("3", "Section 3 paragraph."),
            ("4", "Section 4 paragraph."),
            ("5", "Section 5 paragraph.")
        ]
    );
    assert_eq!(sections.kind, Kind::Docx);
}

#[test]
fn docx_footnotes_and_comments_land_on_their_section() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.docx");
    let w = r#"xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships""#;
    let doc = format!(
        r#"<w:document {w}><w:body><w:p><w:r><w:t>Term is </w:t></w:r><w:r><w:t>30 days</w:t></w:r><w:r><w:footnoteReference w:id="2"/></w:r><w:r><w:commentReference w:id="0"/></w:r><w:pPr><w:sectPr/></w:pPr></w:p><w:p><w:r><w:tab/><w:t>Second section</w:t><w:br/><w:t>next line</w:t></w:r><w:r><w:delText>deleted</w:delText></w:r></w:p><w:sectPr/></w:body></w:document>"#
    );
    let footnotes = format!(
        r#"<w:footnotes {w}><w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote><w:footnote w:id="2"><w:p><w:r><w:t>Calendar days.</w:t></w:r></w:p></w:footnote></w:footnotes>"#
    );
    let comments = format!(
        r#"<w:comments {w}><w:comment w:id="0" w:author="Ann"><w:p><w:r><w:t>Check this.</w:t></w:r></w:p></w:comment></w:comments>"#
    );
    let rels = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/footnotes" Target="footnotes.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/comments" Target="comments.xml"/></Relationships>"#;
    write_zip(
        &path,
        &[
            Entry::new("[Content_Types].xml", CONTENT_TYPES.as_bytes()),
            Entry::new("_rels/.rels", common::ROOT_RELS_DOCX.as_bytes()),
            Entry::new("word/document.xml", doc.as_bytes()),
            Entry::new("word/_rels/document.xml.rels", rels.as_bytes()),
            Entry::new("word/footnotes.xml", footnotes.as_bytes()),
            Entry::new("word/comments.xml", comments.as_bytes()),
        ],
    );
    let mut ex = common::extractor(&[dir.path()]);
    let d = read(&mut ex, &path);
    let pages: Vec<&str> = d.pages.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(
        pages,
        ["Term is 30 days[1]\n[1] Calendar days.\nComment by Ann: Check this.\n", "\tSecond section\nnext line\n"]
    );
}

#[test]
fn pptx_slides_come_in_presentation_order_with_notes_and_tables() {
    let r = real();
    let mut ex = common::extractor(&[&r]);
    let notes = read(&mut ex, &r.join("pptx/python-pptx__sld-notes.pptx"));
    assert_eq!(notes.pages.len(), 2);
    assert_eq!(notes.pages[0].text, "Speaker notes:\nNotes\n");
    let table = read(&mut ex, &r.join("pptx/python-pptx__tbl-cell.pptx"));
    assert_eq!(table.pages[2].text, "a\tb\tc\nd\te\tf\ng\th\ti\n");

    // Eleven slides whose presentation order is not their part names' order (a name sort puts
    // slide10 before slide2; here the deck also lists slide 11 first).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deck.pptx");
    let order: Vec<usize> = std::iter::once(11).chain(1..=10).collect();
    let ids: String =
        order.iter().enumerate().map(|(i, n)| format!(r#"<p:sldId id="{}" r:id="rId{n}"/>"#, 256 + i)).collect();
    let pres = format!(
        r#"<p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>"#
    );
    let rels: String = (1..=11)
        .map(|n| format!(r#"<Relationship Id="rId{n}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide" Target="slides/slide{n}.xml"/>"#))
        .collect();
    let rels = format!(
        r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>"#
    );
    let slides: Vec<(String, String)> = (1..=11)
        .map(|n| {
            (
                format!("ppt/slides/slide{n}.xml"),
                format!(r#"<p:sld xmlns:p="p" xmlns:a="a"><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>Slide part {n}</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>"#),
            )
        })
        .collect();
    let root_rels = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="ppt/presentation.xml"/></Relationships>"#;
    let mut entries = vec![
        Entry::new("[Content_Types].xml", CONTENT_TYPES.as_bytes()),
        Entry::new("_rels/.rels", root_rels.as_bytes()),
        Entry::new("ppt/presentation.xml", pres.as_bytes()),
        Entry::new("ppt/_rels/presentation.xml.rels", rels.as_bytes()),
    ];
    entries.extend(slides.iter().map(|(n, x)| Entry::new(n, x.as_bytes())));
    write_zip(&path, &entries);
    let mut ex = common::extractor(&[dir.path()]);
    let deck = read(&mut ex, &path);
    let texts: Vec<String> = deck.pages.iter().map(|p| p.text.trim().to_string()).collect();
    let want: Vec<String> = order.iter().map(|n| format!("Slide part {n}")).collect();
    assert_eq!(texts, want);
    assert_eq!(
        deck.pages.iter().map(|p| p.label.as_str()).collect::<Vec<_>>(),
        (1..=11).map(|n| n.to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn spreadsheets_are_pages_named_after_their_sheets() {
    let r = real();
    let mut ex = common::extractor(&[&r]);
    let deaths = read(&mut ex, &r.join("xlsx/r-cran-readxl__deaths.xlsx"));
    let names: Vec<&str> = deaths.pages.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(names, ["arts", "other"]);
    let arts = &deaths.pages[0].text;
    assert!(arts.contains("Name\tProfession\tAge\tHas kids\tDate of birth\tDate of death"), "{arts}");
    assert!(arts.contains("David Bowie\tmusician\t69\tTRUE\t1947-01-08\t2016-01-10"), "{arts}");
    let xls = read(&mut ex, &r.join("xls/r-cran-readxl__datasets.xls"));
    assert_eq!(
        xls.pages.iter().map(|p| p.label.as_str()).collect::<Vec<_>>(),
        ["iris", "mtcars", "chickwts", "quakes"]
    );
    assert!(
        xls.pages[0]
            .text
            .starts_with("Sepal.Length\tSepal.Width\tPetal.Length\tPetal.Width\tSpecies\n5.1\t3.5\t1.4\t0.2\tsetosa\n"),
        "{}",
        &xls.pages[0].text[..200]
    );
    let ods = read(&mut ex, &r.join("ods/tablib__book.ods"));
    assert_eq!(ods.kind, Kind::Ods);
    assert!(ods.pages.len() == 2 && !ods.pages[0].text.is_empty(), "{ods:?}");
    // CSV: quoted cells keep their commas; rows become tab-separated lines.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fees.csv"), "name,amount\n\"Smith, J\",10.5\n").unwrap();
    let mut ex = common::extractor(&[dir.path()]);
    let csv = read(&mut ex, &dir.path().join("fees.csv"));
    assert_eq!(
        (csv.kind, csv.pages[0].label.as_str(), csv.text().as_str()),
        (Kind::Csv, "fees", "name\tamount\nSmith, J\t10.5\n")
    );
}

#[test]
fn opendocument_text_and_presentations() {
    let r = real();
    let mut ex = common::extractor(&[&r]);
    let api = read(&mut ex, &r.join("odt/odfpy__api-for-odfpy.odt"));
    // LibreOffice's laid-out pages (soft page breaks).
    assert!(api.pages.len() > 50, "{} pages", api.pages.len());
    assert!(api.text().contains("odfpy"), "{}", &api.text()[..300]);
    let odp = read(&mut ex, &r.join("odp/odfpy__cols.odp"));
    assert_eq!(odp.kind, Kind::Odp);
    assert!(!odp.pages[0].text.is_empty());
}

#[test]
fn html_epub_and_mail() {
    let r = real();
    let mut ex = common::extractor(&[&r]);
    let ja = read(&mut ex, &r.join("html/debian-history__detailed.ja.html"));
    assert!(ja.text().contains("詳細な歴史"), "{}", &ja.text()[..200]);
    assert!(!ja.text().contains("<div"), "visible text only");
    let epub = read(&mut ex, &r.join("epub/debian-policy__policy.epub"));
    assert_eq!(epub.kind, Kind::Epub);
    assert!(epub.pages.len() > 10);
    // Spine order: the title page, then chapter 1, 2, 3 (headings as html2text writes them).
    let firsts: Vec<&str> = epub.pages.iter().take(4).map(|p| p.text.lines().next().unwrap_or("")).collect();
    assert_eq!(
        firsts,
        ["# Debian Policy Manual", "# 1. About this manual", "# 2. The Debian Archive", "# 3. Binary packages"]
    );

    let gb2312 = read(&mut ex, &r.join("eml/mail-parser__mail_test_12.eml"));
    assert!(gb2312.text().contains("Subject: 代开各地增值税发票"), "{}", gb2312.text());
    // An attachment is a page of its own, named after it.
    let att = read(&mut ex, &r.join("eml/hyperkitty__attachment-2.eml"));
    assert!(att.pages.len() == 2, "{:?}", att.pages.iter().map(|p| &p.label).collect::<Vec<_>>());
    let derived = documents().join("derived");
    let mut ex = common::extractor(&[&derived]);
    let mbox = read(&mut ex, &derived.join("mbox/assembled-real-messages.mbox"));
    assert_eq!(mbox.kind, Kind::Mbox);
    let messages = mbox.pages.iter().filter(|p| p.label.starts_with("message ") && !p.label.contains(':')).count();
    assert_eq!(messages, 32);
}

#[test]
fn mail_attachments_are_read_recursively() {
    let dir = tempfile::tempdir().unwrap();
    let docx = dir.path().join("terms.docx");
    common::write_docx(&docx, "<w:p><w:r><w:t>Attached terms: net 45 days.</w:t></w:r></w:p>");
    let b64 = base64(&std::fs::read(&docx).unwrap());
    let mail = format!(
        "From: Ann <ann@example.com>\r\nTo: bob@example.com\r\nSubject: Terms\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n--b\r\nContent-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document; name=\"terms.docx\"\r\nContent-Disposition: attachment; filename=\"terms.docx\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b--\r\n"
    );
    std::fs::write(dir.path().join("mail.eml"), mail).unwrap();
    let mut ex = common::extractor(&[dir.path()]);
    let m = read(&mut ex, &dir.path().join("mail.eml"));
    let pages: Vec<(&str, &str)> = m.pages.iter().map(|p| (p.label.as_str(), p.text.as_str())).collect();
    assert_eq!(pages[0].0, "message");
    assert!(pages[0].1.starts_with("From: Ann <ann@example.com>\nTo: bob@example.com\nDate: "), "{}", pages[0].1);
    assert!(pages[0].1.contains("Subject: Terms\n\nSee the attachment.\n"), "{}", pages[0].1);
    assert_eq!(pages[1], ("terms.docx", "Attached terms: net 45 days.\n"));
}

#[test]
fn rtf_and_legacy_text_encodings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("memo.rtf"),
        br"{\rtf1\ansi\ansicpg1251{\fonttbl{\f0 Times;}}\f0 \'cf\'f0\'e8\'e2\'e5\'f2, Caf\u233?\par Line two}",
    )
    .unwrap();
    let (latin1, _, _) = encoding_rs::WINDOWS_1252.encode("Résumé of the café's crème brûlée recipe, naïve façade.");
    std::fs::write(dir.path().join("old.txt"), &latin1).unwrap();
    let utf16: Vec<u8> = "\u{feff}Grüße aus Köln".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    std::fs::write(dir.path().join("utf16.txt"), utf16).unwrap();
    let mut ex = common::extractor(&[dir.path()]);
    assert_eq!(read(&mut ex, &dir.path().join("memo.rtf")).text(), "Привет, Café\nLine two\n");
    let old = read(&mut ex, &dir.path().join("old.txt"));
    assert_eq!(old.text(), "Résumé of the café's crème brûlée recipe, naïve façade.");
    assert_eq!(old.warnings, ["no byte-order mark and not UTF-8: decoded as windows-1252 (detected)"]);
    assert_eq!(read(&mut ex, &dir.path().join("utf16.txt")).text(), "Grüße aus Köln");
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(3).enumerate() {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(T[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
        if i % 19 == 18 {
            out.push_str("\r\n");
        }
    }
    out
}
