//! PDF: PDFium first, pdf_oxide where PDFium cannot open the file or is not installed
//! (notes §2: PDFium had the best order and speed, 2-4.5x faster than pdf_oxide; pdf_oxide
//! recovered text from 11 damaged files PDFium could not open, mostly truncations).
//!
//! - Text per page in content order, with the page labels the file defines ("iv", "12").
//! - Encryption: a file that needs a password says so. PDFium opens files whose user password
//!   is empty by itself; pdf_oxide answers Ok with no text for an encrypted file (notes §2.3),
//!   so its path asks `is_authenticated` and tries the empty password explicitly.
//! - A page with (almost) no text but with images is marked [`Page::needs_ocr`]; the host runs
//!   Tesseract on it ([`super::ocr`]).

use pdfium_render::prelude::*;

use super::pdfium::Engine;
use super::{Extracted, Kind, Options, Outcome, Page, Unreadable};

/// Fewer non-blank characters than this on a page with images: treat it as scanned.
pub const OCR_BELOW_CHARS: usize = 16;

pub const NEEDS_PASSWORD: &str = "encrypted: this PDF needs a password to be read";

pub fn extract(bytes: &[u8], options: &Options, engine: Option<&Engine>) -> Outcome {
    let ex = read(bytes, options, engine)?;
    // A file cut short is damage, not an empty document: both engines rebuild a truncated file
    // into pages that hold nothing (the corpus's reportlab-userguide__TRUNCATED-5pct.pdf: one
    // empty page of 134).
    if !ex_has_text_or_scans(&ex) && truncated(bytes) {
        return Err(Unreadable::new(
            "a damaged PDF: it is cut short (no end-of-file marker) and no text could be read from it",
        ));
    }
    Ok(ex)
}

fn read(bytes: &[u8], options: &Options, engine: Option<&Engine>) -> Outcome {
    let mut warnings = Vec::new();
    if let Some(engine) = engine {
        match with_pdfium(engine, bytes, options) {
            Ok(ex) if ex_has_text_or_scans(&ex) => return Ok(ex),
            Ok(ex) => {
                // Opened, but no text and no images: a damaged content stream or font that
                // pdf_oxide may still read. Keep PDFium's answer if it finds nothing either.
                match with_oxide(bytes, options, Vec::new()) {
                    Ok(ox) if ox.pages.iter().any(|p| !p.text.trim().is_empty()) => {
                        let mut ox = ox;
                        ox.warnings.push(format!("{} found no text; read with pdf_oxide", engine.name));
                        return Ok(ox);
                    }
                    _ => return Ok(ex),
                }
            }
            Err(Failure::Password) => {
                // pdf_oxide tries the empty password as user and owner password too; if it
                // cannot, the file needs one.
                return match with_oxide(bytes, options, Vec::new()) {
                    Ok(mut ox) if ox.pages.iter().any(|p| !p.text.trim().is_empty()) => {
                        ox.warnings.push(format!("{} asked for a password; read with pdf_oxide", engine.name));
                        Ok(ox)
                    }
                    _ => Err(Unreadable::new(NEEDS_PASSWORD)),
                };
            }
            Err(Failure::Other(e)) => {
                warnings.push(format!("{} could not open it ({e}); read with pdf_oxide", engine.name))
            }
        }
    } else {
        warnings.push("PDFium is not installed (run scripts/install-deps.sh); read with pdf_oxide".to_string());
    }
    with_oxide(bytes, options, warnings)
}

/// No `%%EOF` in the last 2 KiB: the file was cut short (a complete PDF ends with one).
fn truncated(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(2048)..];
    super::detect::memfind(tail, b"%%EOF").is_none()
}

fn ex_has_text_or_scans(ex: &Extracted) -> bool {
    ex.pages.iter().any(|p| p.needs_ocr || !p.text.trim().is_empty())
}

enum Failure {
    Password,
    Other(String),
}

/// PDFium through its C API. pdfium-render's `PdfPageText::all()` asks for the text *inside
/// the page box* (`FPDFText_GetBoundedText`), which tests every character's box: on the
/// 2,415-page R reference manual that took 4.5 s against 2.2 s for PDFium's plain
/// `FPDFText_GetText` (pypdfium2's call, notes §2.2). So the hot path uses the bindings
/// directly, with guards that close every handle.
mod raw {
    use pdfium_render::prelude::*;
    use std::os::raw::{c_int, c_ulong};

    pub const ERR_FILE: c_ulong = 2;
    pub const ERR_FORMAT: c_ulong = 3;
    pub const ERR_PASSWORD: c_ulong = 4;
    pub const ERR_SECURITY: c_ulong = 6;
    pub const ERR_PAGE: c_ulong = 5;
    const PAGEOBJ_IMAGE: c_int = 3;
    const PAGEOBJ_FORM: c_int = 5;

    pub struct Doc<'a> {
        pub b: &'a dyn PdfiumLibraryBindings,
        pub handle: FPDF_DOCUMENT,
    }

    impl<'a> Doc<'a> {
        /// Opens `bytes`; `Err` is PDFium's error code.
        pub fn open(
            b: &'a dyn PdfiumLibraryBindings,
            bytes: &'a [u8],
            password: Option<&str>,
        ) -> Result<Doc<'a>, c_ulong> {
            let handle = unsafe { b.FPDF_LoadMemDocument64(bytes, password) };
            if handle.is_null() {
                return Err(unsafe { b.FPDF_GetLastError() });
            }
            Ok(Doc { b, handle })
        }

        pub fn pages(&self) -> i32 {
            unsafe { self.b.FPDF_GetPageCount(self.handle) }
        }

        pub fn page(&self, index: i32) -> Option<RawPage<'_>> {
            let handle = unsafe { self.b.FPDF_LoadPage(self.handle, index) };
            (!handle.is_null()).then_some(RawPage { b: self.b, handle, _doc: std::marker::PhantomData })
        }

        /// The page label the document defines, if any.
        pub fn label(&self, index: i32) -> Option<String> {
            let len = unsafe { self.b.FPDF_GetPageLabel(self.handle, index, std::ptr::null_mut(), 0) };
            if len <= 2 || len > 4096 {
                return None;
            }
            let mut buf = vec![0u16; (len as usize).div_ceil(2)];
            unsafe { self.b.FPDF_GetPageLabel(self.handle, index, buf.as_mut_ptr().cast(), len) };
            let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
            let s = String::from_utf16_lossy(&buf[..end]).trim().to_string();
            (!s.is_empty()).then_some(s)
        }
    }

    impl Drop for Doc<'_> {
        fn drop(&mut self) {
            unsafe { self.b.FPDF_CloseDocument(self.handle) }
        }
    }

    pub struct RawPage<'d> {
        pub b: &'d dyn PdfiumLibraryBindings,
        pub handle: FPDF_PAGE,
        _doc: std::marker::PhantomData<&'d ()>,
    }

    impl RawPage<'_> {
        /// The page's characters in content order; `None` when its text cannot be loaded.
        pub fn text(&self) -> Option<String> {
            let tp = unsafe { self.b.FPDFText_LoadPage(self.handle) };
            if tp.is_null() {
                return None;
            }
            let n = unsafe { self.b.FPDFText_CountChars(tp) };
            let text = if n <= 0 {
                String::new()
            } else {
                let mut buf = vec![0u16; n as usize + 1];
                let written = unsafe { self.b.FPDFText_GetText(tp, 0, n, buf.as_mut_ptr()) };
                let end = (written.max(1) as usize - 1).min(n as usize);
                String::from_utf16_lossy(&buf[..end])
            };
            unsafe { self.b.FPDFText_ClosePage(tp) };
            Some(text)
        }

        /// Whether the page draws images (directly or in form XObjects): a scan.
        pub fn has_images(&self) -> bool {
            let n = unsafe { self.b.FPDFPage_CountObjects(self.handle) };
            (0..n.min(100_000)).any(|i| {
                let o = unsafe { self.b.FPDFPage_GetObject(self.handle, i) };
                !o.is_null() && matches!(unsafe { self.b.FPDFPageObj_GetType(o) }, PAGEOBJ_IMAGE | PAGEOBJ_FORM)
            })
        }

        /// Width and height in points (after /Rotate).
        pub fn size(&self) -> (f32, f32) {
            unsafe { (self.b.FPDF_GetPageWidthF(self.handle), self.b.FPDF_GetPageHeightF(self.handle)) }
        }

        /// Renders into a white BGRx bitmap of `w` x `h` and returns it as grey bytes.
        pub fn render_gray(&self, w: i32, h: i32) -> Option<Vec<u8>> {
            let bmp = unsafe { self.b.FPDFBitmap_Create(w, h, 0) };
            if bmp.is_null() {
                return None;
            }
            unsafe {
                self.b.FPDFBitmap_FillRect(bmp, 0, 0, w, h, 0xFFFF_FFFF);
                // Flags: annotations drawn (FPDF_ANNOT = 1); rotation 0 = the page's own.
                self.b.FPDF_RenderPageBitmap(bmp, self.handle, 0, 0, w, h, 0, 0x01);
            }
            let stride = unsafe { self.b.FPDFBitmap_GetStride(bmp) } as usize;
            let buf = unsafe { self.b.FPDFBitmap_GetBuffer(bmp) } as *const u8;
            let (wu, hu) = (w as usize, h as usize);
            let mut gray = Vec::with_capacity(wu * hu);
            if !buf.is_null() && stride >= wu * 4 {
                let data = unsafe { std::slice::from_raw_parts(buf, stride * hu) };
                for y in 0..hu {
                    for px in data[y * stride..y * stride + wu * 4].chunks_exact(4) {
                        // BGRx: ITU-R 601 luma.
                        let v = (u32::from(px[2]) * 299 + u32::from(px[1]) * 587 + u32::from(px[0]) * 114) / 1000;
                        gray.push(v as u8);
                    }
                }
            }
            unsafe { self.b.FPDFBitmap_Destroy(bmp) };
            (gray.len() == wu * hu).then_some(gray)
        }
    }

    impl Drop for RawPage<'_> {
        fn drop(&mut self) {
            unsafe { self.b.FPDF_ClosePage(self.handle) }
        }
    }
}

fn describe_code(code: std::os::raw::c_ulong) -> String {
    match code {
        raw::ERR_FILE => "the file is damaged or truncated".into(),
        raw::ERR_FORMAT => "not a valid PDF or damaged".into(),
        raw::ERR_PASSWORD => "it needs a password".into(),
        raw::ERR_SECURITY => "an unsupported security handler".into(),
        raw::ERR_PAGE => "a damaged page".into(),
        c => format!("PDFium error {c}"),
    }
}

fn open<'a>(engine: &'a Engine, bytes: &'a [u8]) -> Result<raw::Doc<'a>, Failure> {
    let b = engine.pdfium.bindings();
    match raw::Doc::open(b, bytes, None) {
        Ok(d) => Ok(d),
        // An empty *owner* password also opens a file (pypdf's r6-user-password.pdf: qpdf
        // says "Supplied password is owner password").
        Err(raw::ERR_PASSWORD) => raw::Doc::open(b, bytes, Some("")).map_err(|c| match c {
            raw::ERR_PASSWORD => Failure::Password,
            c => Failure::Other(describe_code(c)),
        }),
        Err(c) => Err(Failure::Other(describe_code(c))),
    }
}

fn with_pdfium(engine: &Engine, bytes: &[u8], options: &Options) -> Result<Extracted, Failure> {
    let doc = open(engine, bytes)?;
    let mut ex = Extracted::new(Kind::Pdf, engine.name.clone());
    let mut total = 0usize;
    let count = doc.pages().max(0);
    for index in 0..count {
        let number = index as u32 + 1;
        let label = doc.label(index).unwrap_or_else(|| number.to_string());
        let Some(page) = doc.page(index) else {
            let mut p = Page::new(number, label, "");
            p.note = Some("this page could not be read (damaged)".into());
            ex.warnings.push(format!("page {number} could not be read (damaged)"));
            ex.pages.push(p);
            continue;
        };
        let text = page.text().unwrap_or_else(|| {
            ex.warnings.push(format!("page {number}: its text could not be read"));
            String::new()
        });
        let mut p = Page::new(number, label, text);
        let sparse = non_blank(&p.text) < OCR_BELOW_CHARS;
        if sparse && page.has_images() {
            if options.ocr {
                p.needs_ocr = true;
            } else if non_blank(&p.text) == 0 {
                p.note = Some(super::ocr::TURNED_OFF.into());
            }
        } else if non_blank(&p.text) == 0 {
            p.note = Some("an empty page (no text, no images)".into());
        }
        total += p.text.len();
        ex.pages.push(p);
        if total > options.max_output_bytes {
            break; // `finish` cuts and says so
        }
    }
    Ok(ex)
}

fn non_blank(s: &str) -> usize {
    s.chars().filter(|c| !c.is_whitespace()).count()
}

fn with_oxide(bytes: &[u8], options: &Options, mut warnings: Vec<String>) -> Outcome {
    use pdf_oxide::document::PdfDocument;
    let doc = PdfDocument::from_bytes(bytes.to_vec()).map_err(|e| {
        let e = e.to_string();
        let e = e.lines().next().unwrap_or("").to_string();
        Unreadable::new(format!("a damaged PDF that neither PDFium nor pdf_oxide can open ({e})"))
    })?;
    if doc.is_encrypted() && !doc.is_authenticated() && !doc.authenticate(b"").unwrap_or(false) {
        return Err(Unreadable::new(NEEDS_PASSWORD));
    }
    let count =
        doc.page_count().map_err(|e| Unreadable::new(format!("a damaged PDF: its pages cannot be found ({e})")))?;
    if count == 0 {
        return Err(Unreadable::new("a damaged PDF: it has no pages"));
    }
    let mut ex = Extracted::new(Kind::Pdf, "pdf_oxide 0.3");
    ex.warnings.append(&mut warnings);
    let mut total = 0usize;
    let mut failed = 0usize;
    for index in 0..count {
        let number = index as u32 + 1;
        // Per page: a panic on one page (pdf_oxide has them) costs that page only.
        let text = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| doc.extract_text(index)));
        let mut p = Page::new(number, number.to_string(), "");
        match text {
            Ok(Ok(t)) => p.text = t,
            Ok(Err(e)) => {
                failed += 1;
                p.note = Some(format!("this page could not be read ({})", e.to_string().lines().next().unwrap_or("")));
            }
            Err(_) => {
                failed += 1;
                p.note = Some("this page could not be read (the reader failed on it)".into());
            }
        }
        total += p.text.len();
        ex.pages.push(p);
        if total > options.max_output_bytes {
            break;
        }
    }
    if failed > 0 {
        ex.warnings.push(format!("{failed} of {count} pages could not be read"));
    }
    Ok(ex)
}

/// Renders page `number` (1-based) in grey for OCR at `dpi`, shrunk to at most `max_pixels`.
/// Returns (width, height, one byte per pixel).
pub fn render_gray(
    engine: &Engine,
    bytes: &[u8],
    number: u32,
    dpi: u32,
    max_pixels: u64,
) -> Result<(u32, u32, Vec<u8>), Unreadable> {
    let doc = open(engine, bytes).map_err(|f| match f {
        Failure::Password => Unreadable::new(NEEDS_PASSWORD),
        Failure::Other(e) => Unreadable::new(format!("the page cannot be rendered ({e})")),
    })?;
    let index = number
        .checked_sub(1)
        .and_then(|i| i32::try_from(i).ok())
        .filter(|&i| i < doc.pages())
        .ok_or_else(|| Unreadable::new(format!("there is no page {number}")))?;
    let page = doc.page(index).ok_or_else(|| Unreadable::new(format!("page {number} is damaged")))?;
    let (w_pt, h_pt) = page.size();
    let (w_pt, h_pt) = (f64::from(w_pt.max(1.0)), f64::from(h_pt.max(1.0)));
    let mut scale = f64::from(dpi) / 72.0;
    let pixels = w_pt * h_pt * scale * scale;
    if pixels > max_pixels as f64 {
        scale *= (max_pixels as f64 / pixels).sqrt();
    }
    let (w, h) = (((w_pt * scale) as i32).clamp(16, 20_000), ((h_pt * scale) as i32).clamp(16, 20_000));
    let gray = page.render_gray(w, h).ok_or_else(|| Unreadable::new(format!("page {number} cannot be rendered")))?;
    Ok((w as u32, h as u32, gray))
}
