//! Spreadsheets: XLSX and XLS with calamine 0.38, CSV and TSV with the csv crate (ODS is in
//! [`super::odf`]). A sheet is a page named after it; rows become lines, cells separated by
//! tabs.
//!
//! XLSX is read as a stream (`worksheet_cells_reader`): calamine's `worksheet_range` allocates
//! rows × columns, so one cell at XFD1048576 asks for 17 billion cells and aborts the process
//! (fastexcel #487, python-calamine #130; notes §3.2). Empty rows are not written (a run of them
//! becomes one blank line), and a gap of more than [`MAX_GAP`] empty cells is written as the
//! next cell's column name instead of that many tabs. XLS (BIFF) is at most 65,536 × 256 cells,
//! so its dense range is bounded (and the worker's memory limit is there anyway).

use std::io::Cursor;

use calamine::{Data, DataRef, Reader};

use super::zipcheck::Archive;
use super::{text, Extracted, Kind, Options, Outcome, Unreadable};

/// Empty cells in a row written as tabs at most; a longer gap is written as `[XFD]`.
pub const MAX_GAP: u32 = 64;

/// One sheet's text being built.
#[derive(Default)]
pub struct Sheet {
    text: String,
    blank_pending: bool,
}

impl Sheet {
    /// Writes one row; cells' own tabs and line breaks become spaces.
    pub fn row<S: AsRef<str>>(&mut self, cells: &[S]) {
        if self.blank_pending && !self.text.is_empty() {
            self.text.push('\n');
        }
        self.blank_pending = false;
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                self.text.push('\t');
            }
            push_cell(&mut self.text, c.as_ref());
        }
        let trimmed = self.text.trim_end_matches(['\t', ' ']).len();
        self.text.truncate(trimmed);
        self.text.push('\n');
    }

    /// Empty rows: one blank line before the next row, however many there were.
    pub fn skip_rows(&mut self, n: u64) {
        if n > 0 {
            self.blank_pending = true;
        }
    }

    /// Writes a row given as (column, value) pairs in column order.
    fn sparse_row(&mut self, cells: &[(u32, String)]) {
        if self.blank_pending && !self.text.is_empty() {
            self.text.push('\n');
        }
        self.blank_pending = false;
        let mut col = 0u32;
        for (i, (c, v)) in cells.iter().enumerate() {
            let gap = c.saturating_sub(col);
            if i > 0 || gap > 0 {
                if gap > MAX_GAP {
                    if i > 0 {
                        self.text.push('\t');
                    }
                    self.text.push('[');
                    self.text.push_str(&column_name(*c));
                    self.text.push_str("]\t");
                } else {
                    for _ in 0..gap + u32::from(i > 0) {
                        self.text.push('\t');
                    }
                }
            }
            push_cell(&mut self.text, v);
            col = c + 1;
        }
        let trimmed = self.text.trim_end_matches(['\t', ' ']).len();
        self.text.truncate(trimmed);
        self.text.push('\n');
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn push_cell(out: &mut String, cell: &str) {
    if cell.contains(['\t', '\n', '\r']) {
        out.extend(cell.chars().map(|ch| if matches!(ch, '\t' | '\n' | '\r') { ' ' } else { ch }));
    } else {
        out.push_str(cell);
    }
}

/// 0 -> "A", 25 -> "Z", 26 -> "AA", 16383 -> "XFD".
pub fn column_name(mut col: u32) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).expect("ASCII")
}

fn number(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn datetime(dt: &calamine::ExcelDateTime) -> String {
    if dt.is_duration() {
        return match dt.as_duration() {
            Some(d) => {
                let s = d.num_seconds();
                format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
            }
            None => number(dt.as_f64()),
        };
    }
    match dt.as_datetime() {
        Some(t) if t.time() == chrono::NaiveTime::MIN => t.format("%Y-%m-%d").to_string(),
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => number(dt.as_f64()),
    }
}

fn data_ref(v: &DataRef<'_>) -> String {
    match v {
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => number(*f),
        DataRef::String(s) => s.clone(),
        DataRef::SharedString(s) => s.to_string(),
        DataRef::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        DataRef::DateTime(dt) => datetime(dt),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::Error(e) => e.to_string(),
        DataRef::Empty => String::new(),
    }
}

fn data(v: &Data) -> String {
    match v {
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number(*f),
        Data::String(s) => s.clone(),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Data::DateTime(dt) => datetime(dt),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => e.to_string(),
        Data::Empty => String::new(),
    }
}

pub fn workbook(kind: Kind, bytes: &[u8], options: &Options) -> Outcome {
    match kind {
        Kind::Xlsx => xlsx(bytes, options),
        _ => xls(bytes, options),
    }
}

fn xlsx(bytes: &[u8], options: &Options) -> Outcome {
    // calamine has no zip caps of its own (notes §4): check first.
    drop(Archive::open(bytes, &options.zip)?);
    let mut book: calamine::Xlsx<_> = calamine::Xlsx::new(Cursor::new(bytes))
        .map_err(|e| Unreadable::new(format!("a damaged Excel workbook: {e}")))?;
    let mut ex = Extracted::new(Kind::Xlsx, "calamine 0.38 (streaming)");
    let mut budget = options.max_cells;
    for name in book.sheet_names() {
        let mut sheet = Sheet::default();
        let mut row: Vec<(u32, String)> = Vec::new();
        let mut row_no: Option<u32> = None;
        let mut reader = match book.worksheet_cells_reader(&name) {
            Ok(r) => r,
            Err(e) => {
                // Chart sheets and dialog sheets have no cells.
                ex.warnings.push(format!("sheet {name:?} was not read: {e}"));
                ex.push(name, "");
                continue;
            }
        };
        loop {
            let cell = match reader.next_cell() {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    ex.warnings.push(format!("sheet {name:?} is damaged after row {}: {e}", row_no.unwrap_or(0) + 1));
                    break;
                }
            };
            if budget == 0 {
                ex.warnings.push(format!("only the first {} cells were read", options.max_cells));
                break;
            }
            let value = data_ref(cell.get_value());
            if value.is_empty() {
                continue;
            }
            budget -= 1;
            let (r, c) = cell.get_position();
            if row_no != Some(r) {
                if let Some(prev) = row_no {
                    row.sort_by_key(|(c, _)| *c);
                    sheet.sparse_row(&row);
                    row.clear();
                    if r > prev + 1 {
                        sheet.skip_rows(u64::from(r - prev - 1));
                    }
                } else if r > 0 {
                    sheet.skip_rows(u64::from(r));
                }
                row_no = Some(r);
            }
            row.push((c, value));
        }
        if !row.is_empty() {
            row.sort_by_key(|(c, _)| *c);
            sheet.sparse_row(&row);
        }
        drop(reader);
        ex.push(name, sheet.finish());
        if budget == 0 {
            break;
        }
    }
    Ok(ex)
}

fn xls(bytes: &[u8], options: &Options) -> Outcome {
    let mut book: calamine::Xls<_> = calamine::Xls::new(Cursor::new(bytes))
        .map_err(|e| Unreadable::new(format!("a damaged legacy Excel workbook: {e}")))?;
    let mut ex = Extracted::new(Kind::Xls, "calamine 0.38");
    let mut budget = options.max_cells;
    for name in book.sheet_names() {
        let range = match book.worksheet_range(&name) {
            Ok(r) => r,
            Err(e) => {
                ex.warnings.push(format!("sheet {name:?} was not read: {e}"));
                ex.push(name, "");
                continue;
            }
        };
        let mut sheet = Sheet::default();
        let start = range.start().unwrap_or((0, 0));
        let mut empty_run = u64::from(start.0);
        for row in range.rows() {
            let cells: Vec<(u32, String)> = row
                .iter()
                .enumerate()
                .map(|(i, v)| (start.1 + i as u32, data(v)))
                .filter(|(_, v)| !v.is_empty())
                .collect();
            if cells.is_empty() {
                empty_run += 1;
                continue;
            }
            sheet.skip_rows(empty_run);
            empty_run = 0;
            if budget < cells.len() as u64 {
                ex.warnings.push(format!("only the first {} cells were read", options.max_cells));
                break;
            }
            budget -= cells.len() as u64;
            sheet.sparse_row(&cells);
        }
        ex.push(name, sheet.finish());
    }
    Ok(ex)
}

/// CSV or TSV: decoded like any text, then parsed (quoted fields may hold the delimiter and
/// line breaks). One page, named after the file.
pub fn delimited(kind: Kind, bytes: &[u8], name: &str, options: &Options) -> Outcome {
    let decoded = text::decode(bytes);
    let delimiter = if kind == Kind::Tsv { b'\t' } else { b',' };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(decoded.text.as_bytes());
    let mut sheet = Sheet::default();
    let mut ex = Extracted::new(kind, "csv");
    ex.warnings.extend(decoded.warning());
    let mut budget = options.max_cells;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                if budget < record.len() as u64 {
                    ex.warnings.push(format!("only the first {} cells were read", options.max_cells));
                    break;
                }
                budget -= record.len() as u64;
                let cells: Vec<&str> = record.iter().collect();
                if cells.iter().all(|c| c.is_empty()) {
                    sheet.skip_rows(1);
                } else {
                    sheet.row(&cells);
                }
            }
            Err(e) => {
                // Not really delimited: read it as the text it is.
                let mut ex = Extracted::new(kind, "text");
                ex.warnings.extend(decoded.warning());
                ex.warnings.push(format!("read as plain text: {e}"));
                ex.push(sheet_label(name), decoded.text);
                return Ok(ex);
            }
        }
    }
    ex.push(sheet_label(name), sheet.finish());
    Ok(ex)
}

fn sheet_label(name: &str) -> String {
    name.rsplit_once('.').map(|(stem, _)| stem).unwrap_or(name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_and_sparse_rows() {
        assert_eq!(column_name(0), "A");
        assert_eq!(column_name(25), "Z");
        assert_eq!(column_name(26), "AA");
        assert_eq!(column_name(16383), "XFD");
        let mut s = Sheet::default();
        s.sparse_row(&[(0, "a".into()), (2, "c".into())]);
        s.sparse_row(&[(1, "b".into())]);
        s.skip_rows(10);
        s.sparse_row(&[(0, "x".into()), (16383, "far".into())]);
        s.sparse_row(&[(16383, "only".into())]);
        assert_eq!(s.finish(), "a\t\tc\n\tb\n\nx\t[XFD]\tfar\n[XFD]\tonly\n");
    }
}
