//! The history of questions: every run of `quarry ask` and of the window's Ask, with its answer,
//! citations, models, mode, time and every event it streamed, in the catalog's SQLite database
//! (`runs`, `run_events`, `runs_fts`; schema version 2 of [`crate::collection::catalog`]).
//!
//! A run is written as it happens, not at its end: [`History::start`] inserts it `running` with
//! the process id, events are appended as they come ([`History::append`]), and
//! [`History::finish`] sets its outcome. A process killed half-way therefore leaves a `running`
//! row whose process is gone, and every read turns that into [`RunStatus::Interrupted`] (and
//! stores it), so a crash shows as "interrupted", never as lost and never as forever running.
//!
//! This crate knows the events only as JSON (the loop's `quarry_rlm::Event` lives above it);
//! `quarry_rlm::Recorder` is the one writer both the CLI and the window use. The Markdown export
//! reads the events' `type` tags to show each turn's code and output.
//!
//! ```no_run
//! use quarry_index::history::{ExportFormat, History, ListFilter};
//! let history = History::open_default()?;
//! for run in history.list(&ListFilter::default())? {
//!     println!("{} {:?} {}", run.id, run.status, run.question);
//! }
//! let hits = history.search("notice period", 10)?;
//! if let Some(first) = hits.first() {
//!     println!("{}", history.export(first.id, ExportFormat::Markdown)?);
//! }
//! # Ok::<(), quarry_index::Error>(())
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::collection::{data_dir, Catalog};
use crate::{Error, Result};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Its process is still answering.
    Running,
    /// It ended with an answer (possibly one forced by a budget limit: `stats.stop_reason`).
    Done,
    /// It ended with an error (`error`).
    Failed,
    /// The person stopped it; it keeps what it had found.
    Cancelled,
    /// Its process ended (killed, crashed, the machine went down) before the run did.
    Interrupted,
}

impl RunStatus {
    pub const ALL: [RunStatus; 5] =
        [RunStatus::Running, RunStatus::Done, RunStatus::Failed, RunStatus::Cancelled, RunStatus::Interrupted];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<RunStatus, String> {
        RunStatus::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
            format!("unknown status '{s}'; the statuses are {}", RunStatus::ALL.map(RunStatus::as_str).join(", "))
        })
    }
}

/// A run about to start.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub question: String,
    /// `auto`, `rlm`, `direct` or `rag` (as asked: the mode `auto` chose shows in the events).
    pub mode: String,
    /// The collection asked of, by name; `None` for a folder read directly.
    pub collection: Option<String>,
    /// The folder asked of (a collection's root).
    pub folder: PathBuf,
    /// The models, as the caller names them (e.g. `{"root": ..., "sub": ...}`): what a re-run
    /// asks again with.
    pub models: Value,
    /// The process answering: when it is gone and the run still `running`, the run was
    /// interrupted. [`NewRun::new`] sets this process.
    pub pid: u32,
}

impl NewRun {
    pub fn new(question: &str, mode: &str, folder: &Path) -> NewRun {
        NewRun {
            question: question.into(),
            mode: mode.into(),
            collection: None,
            folder: folder.into(),
            models: Value::Object(Default::default()),
            pid: std::process::id(),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Finish {
    pub status: RunStatus,
    pub answer: Option<String>,
    /// The answer's checked citations, as JSON (`quarry_rlm::Citation`s).
    pub citations: Value,
    /// Turns, sub-calls, stop reason, seconds, tokens, notices: whatever the caller measured.
    pub stats: Value,
    pub error: Option<String>,
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub id: i64,
    pub question: String,
    pub mode: String,
    pub collection: Option<String>,
    pub folder: String,
    pub status: RunStatus,
    /// Unix milliseconds.
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// The answer's first line, shortened.
    pub preview: Option<String>,
    /// For a search: the words that matched, in `[brackets]`, with their context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
}

/// One run, whole.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub id: i64,
    pub question: String,
    pub mode: String,
    pub collection: Option<String>,
    pub folder: String,
    pub status: RunStatus,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub models: Value,
    pub answer: Option<String>,
    pub citations: Value,
    pub stats: Value,
    pub error: Option<String>,
    pub pid: Option<u32>,
    /// Every event the run streamed, in order (`quarry_rlm::Event` as JSON).
    pub events: Vec<Value>,
}

/// Which runs [`History::list`] returns.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Runs asked of this collection (by name).
    pub collection: Option<String>,
    /// Runs asked of this folder.
    pub folder: Option<String>,
    pub status: Option<RunStatus>,
    /// At most this many, newest first (default: all).
    pub limit: Option<usize>,
}

/// What [`History::export`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// The whole [`Run`], events included, pretty-printed.
    Json,
    /// For people: the question, the answer, its sources marked checked or not, each turn's
    /// code and output.
    #[serde(alias = "md")]
    Markdown,
    /// The events, one JSON object a line (as `quarry ask --json` streamed them).
    Jsonl,
}

impl std::str::FromStr for ExportFormat {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<ExportFormat, String> {
        match s {
            "json" => Ok(ExportFormat::Json),
            "md" | "markdown" => Ok(ExportFormat::Markdown),
            "jsonl" => Ok(ExportFormat::Jsonl),
            _ => Err(format!("unknown export format '{s}'; the formats are md, json and jsonl")),
        }
    }
}

/// The history, over the catalog's database.
pub struct History {
    catalog: Catalog,
}

const SUMMARY_COLUMNS: &str =
    "r.id, r.question, r.mode, r.collection, r.folder, r.status, r.started_ms, r.finished_ms, r.answer";

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunSummary> {
    let status: String = r.get(5)?;
    let answer: Option<String> = r.get(8)?;
    Ok(RunSummary {
        id: r.get(0)?,
        question: r.get(1)?,
        mode: r.get(2)?,
        collection: r.get(3)?,
        folder: r.get(4)?,
        status: status.parse().unwrap_or(RunStatus::Failed),
        started_ms: r.get(6)?,
        finished_ms: r.get(7)?,
        preview: answer.as_deref().map(preview),
        snippet: None,
    })
}

/// The answer's first non-empty line, at most 120 characters.
fn preview(answer: &str) -> String {
    let line = answer.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    match line.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// When process `pid` started (clock ticks after boot, `/proc/PID/stat` field 22), `None` when
/// there is no such process or it is a zombie. Stored beside the pid so that a pid reused by
/// another process after a crash does not keep a dead run `running`.
#[cfg(target_os = "linux")]
fn process_start(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold spaces and parentheses.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

#[cfg(target_os = "linux")]
fn alive(pid: u32, started: Option<i64>) -> bool {
    match process_start(pid) {
        None => false,
        Some(now) => started.is_none_or(|s| s == now),
    }
}

#[cfg(not(target_os = "linux"))]
fn process_start(_pid: u32) -> Option<i64> {
    None
}

#[cfg(not(target_os = "linux"))]
fn alive(pid: u32, _started: Option<i64>) -> bool {
    // kill(pid, 0) checks existence without sending anything; EPERM: it exists, not ours.
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    unsafe { libc::kill(pid, 0) == 0 }
    || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The words of what a person typed, each a quoted prefix query: `notice per` finds "notice
/// period". Quoting keeps FTS5's operators (`-`, `:`, `*`, `"`, `AND`) out of plain text.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| format!("\"{w}\"*")).collect();
    (!words.is_empty()).then(|| words.join(" "))
}

impl History {
    /// The history in [`data_dir`] (the same database as the collections).
    pub fn open_default() -> Result<History> {
        History::open_in(&data_dir()?)
    }

    /// The history of the library in `dir`.
    pub fn open_in(dir: &Path) -> Result<History> {
        History::open(&dir.join("catalog.sqlite"))
    }

    /// The history in the catalog database at `path` (created and migrated as needed).
    pub fn open(path: &Path) -> Result<History> {
        Ok(History { catalog: Catalog::open(path)? })
    }

    pub fn path(&self) -> &Path {
        self.catalog.path()
    }

    /// Records that `run` started, `running`; returns its id.
    pub fn start(&self, run: &NewRun) -> Result<i64> {
        let c = &self.catalog;
        let collection_id: Option<i64> = match &run.collection {
            Some(name) => c
                .conn
                .query_row("SELECT id FROM collections WHERE name = ?1", [name], |r| r.get(0))
                .optional()
                .map_err(|e| c.err(e))?,
            None => None,
        };
        c.conn
            .query_row(
                "INSERT INTO runs (collection_id, collection, folder, question, mode, models, started_ms, status, pid, pid_start)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9) RETURNING id",
                params![
                    collection_id,
                    run.collection,
                    run.folder.to_string_lossy(),
                    run.question,
                    run.mode,
                    run.models.to_string(),
                    now_ms(),
                    run.pid,
                    process_start(run.pid)
                ],
                |r| r.get(0),
            )
            .map_err(|e| c.err(e))
    }

    /// Appends `events` (JSON texts) to run `id`, after those it has, in one transaction.
    pub fn append(&self, id: i64, events: &[String]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let path = self.catalog.path().to_path_buf();
        let err = |e: rusqlite::Error| Error::Catalog { path: path.clone(), message: e.to_string() };
        // `unchecked`: `&self` suffices, and nothing else uses this connection meanwhile.
        let tx = self.catalog.conn.unchecked_transaction().map_err(err)?;
        {
            let next: i64 = tx
                .query_row("SELECT coalesce(max(seq) + 1, 0) FROM run_events WHERE run_id = ?1", [id], |r| r.get(0))
                .map_err(err)?;
            let mut st =
                tx.prepare_cached("INSERT INTO run_events (run_id, seq, event) VALUES (?1, ?2, ?3)").map_err(err)?;
            for (i, e) in events.iter().enumerate() {
                st.execute(params![id, next + i as i64, e]).map_err(|e| match e {
                    rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                        Error::NoRun { id }
                    }
                    e => err(e),
                })?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Records how run `id` ended.
    pub fn finish(&self, id: i64, finish: &Finish) -> Result<()> {
        let c = &self.catalog;
        let n = c
            .conn
            .execute(
                "UPDATE runs SET status = ?2, finished_ms = ?3, answer = ?4, citations = ?5, stats = ?6, error = ?7 WHERE id = ?1",
                params![
                    id,
                    finish.status.as_str(),
                    now_ms(),
                    finish.answer,
                    finish.citations.to_string(),
                    finish.stats.to_string(),
                    finish.error
                ],
            )
            .map_err(|e| c.err(e))?;
        if n == 0 {
            return Err(Error::NoRun { id });
        }
        Ok(())
    }

    /// Marks every `running` run whose process is gone as interrupted; returns how many.
    pub fn reap(&self) -> Result<usize> {
        let c = &self.catalog;
        let running: Vec<(i64, Option<u32>, Option<i64>)> = {
            let mut st = c
                .conn
                .prepare_cached("SELECT id, pid, pid_start FROM runs WHERE status = 'running'")
                .map_err(|e| c.err(e))?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(|e| c.err(e))?;
            rows.collect::<rusqlite::Result<_>>().map_err(|e| c.err(e))?
        };
        let mut n = 0;
        for (id, pid, started) in running {
            if pid.is_some_and(|p| alive(p, started)) {
                continue;
            }
            n += c
                .conn
                .execute(
                    "UPDATE runs SET status = 'interrupted',
                       error = coalesce(error, 'the process answering it ended before the run did')
                     WHERE id = ?1 AND status = 'running'",
                    [id],
                )
                .map_err(|e| c.err(e))?;
        }
        Ok(n)
    }

    /// The runs, newest first.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<RunSummary>> {
        self.reap()?;
        let c = &self.catalog;
        let mut st = c
            .conn
            .prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS} FROM runs r
                 WHERE (?1 IS NULL OR r.collection = ?1) AND (?2 IS NULL OR r.folder = ?2) AND (?3 IS NULL OR r.status = ?3)
                 ORDER BY r.started_ms DESC, r.id DESC LIMIT ?4"
            ))
            .map_err(|e| c.err(e))?;
        let limit = filter.limit.map_or(-1, |l| l as i64);
        let rows = st
            .query_map(
                params![filter.collection, filter.folder, filter.status.map(RunStatus::as_str), limit],
                summary_row,
            )
            .map_err(|e| c.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| c.err(e))
    }

    /// Runs whose question or answer hold every word of `text` (as word prefixes), best
    /// match first, each with a snippet.
    pub fn search(&self, text: &str, limit: usize) -> Result<Vec<RunSummary>> {
        let Some(query) = fts_query(text) else {
            return Err(Error::EmptySearch { query: text.into() });
        };
        self.reap()?;
        let c = &self.catalog;
        let mut st = c
            .conn
            .prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS}, snippet(runs_fts, -1, '[', ']', '…', 12) FROM runs_fts
                 JOIN runs r ON r.id = runs_fts.rowid
                 WHERE runs_fts MATCH ?1 ORDER BY rank, r.id DESC LIMIT ?2"
            ))
            .map_err(|e| c.err(e))?;
        let rows = st
            .query_map(params![query, limit as i64], |r| {
                let mut s = summary_row(r)?;
                s.snippet = r.get(9)?;
                Ok(s)
            })
            .map_err(|e| c.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| c.err(e))
    }

    /// Run `id`, whole; [`Error::NoRun`] when there is none.
    pub fn get(&self, id: i64) -> Result<Run> {
        self.reap()?;
        let c = &self.catalog;
        let json = |s: String| serde_json::from_str(&s).unwrap_or(Value::String(s));
        let run = c
            .conn
            .query_row(
                "SELECT id, question, mode, collection, folder, status, started_ms, finished_ms, models, answer,
                        citations, stats, error, pid
                 FROM runs WHERE id = ?1",
                [id],
                |r| {
                    let status: String = r.get(5)?;
                    Ok(Run {
                        id: r.get(0)?,
                        question: r.get(1)?,
                        mode: r.get(2)?,
                        collection: r.get(3)?,
                        folder: r.get(4)?,
                        status: status.parse().unwrap_or(RunStatus::Failed),
                        started_ms: r.get(6)?,
                        finished_ms: r.get(7)?,
                        models: json(r.get(8)?),
                        answer: r.get(9)?,
                        citations: json(r.get(10)?),
                        stats: json(r.get(11)?),
                        error: r.get(12)?,
                        pid: r.get(13)?,
                        events: Vec::new(),
                    })
                },
            )
            .optional()
            .map_err(|e| c.err(e))?;
        let mut run = run.ok_or(Error::NoRun { id })?;
        let mut st = c
            .conn
            .prepare_cached("SELECT event FROM run_events WHERE run_id = ?1 ORDER BY seq")
            .map_err(|e| c.err(e))?;
        let rows = st.query_map([id], |r| r.get::<_, String>(0)).map_err(|e| c.err(e))?;
        for e in rows {
            run.events.push(json(e.map_err(|e| c.err(e))?));
        }
        Ok(run)
    }

    /// Forgets run `id` and its events. A run still answering is refused: its process would go
    /// on writing to a run that is gone.
    pub fn remove(&self, id: i64) -> Result<()> {
        let status = self.get(id)?.status;
        if status == RunStatus::Running {
            return Err(Error::RunRunning { id });
        }
        let c = &self.catalog;
        c.conn.execute("DELETE FROM runs WHERE id = ?1", [id]).map_err(|e| c.err(e))?;
        Ok(())
    }

    /// Run `id` as text in `format`.
    pub fn export(&self, id: i64, format: ExportFormat) -> Result<String> {
        let run = self.get(id)?;
        Ok(match format {
            ExportFormat::Json => serde_json::to_string_pretty(&run).unwrap_or_default() + "\n",
            ExportFormat::Jsonl => run.events.iter().map(|e| e.to_string() + "\n").collect(),
            ExportFormat::Markdown => markdown(&run),
        })
    }
}

/// `2026-12-02 17:07 UTC` from unix milliseconds (H. Hinnant's civil-from-days algorithm: UTC
/// needs no time-zone database, and a date is all the export shows).
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A fenced block that no backtick run inside `text` can close early.
fn fenced(out: &mut String, lang: &str, text: &str) {
    let mut fence = "```".to_string();
    while text.contains(&fence) {
        fence.push('`');
    }
    let _ = writeln!(out, "{fence}{lang}\n{}\n{fence}\n", text.trim_end());
}

const OUTPUT_CHARS: usize = 2000;

/// The Markdown export: what a person pastes into a report or a ticket.
fn markdown(run: &Run) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", run.question.trim());
    let _ = writeln!(out, "- **Run:** {} ({})", run.id, run.status.as_str());
    let _ = writeln!(out, "- **Asked:** {}", utc(run.started_ms));
    match &run.collection {
        Some(name) => {
            let _ = writeln!(out, "- **Collection:** {name} (`{}`)", run.folder);
        }
        None => {
            let _ = writeln!(out, "- **Folder:** `{}`", run.folder);
        }
    }
    let _ = write!(out, "- **Mode:** {}", run.mode);
    if let (Some(root), Some(sub)) = (str_of(&run.models, "root"), str_of(&run.models, "sub")) {
        let _ = write!(out, " · **Models:** {root} (root), {sub} (sub)");
    }
    out.push('\n');
    let s = &run.stats;
    let mut facts = Vec::new();
    if let Some(r) = str_of(s, "stop_reason") {
        facts.push(format!("ended by {}", r.replace('_', " ")));
    }
    if let Some(n) = s.get("iterations").and_then(Value::as_u64) {
        facts.push(format!("{n} turn{}", if n == 1 { "" } else { "s" }));
    }
    if let Some(n) = s.get("sub_calls").and_then(Value::as_u64) {
        facts.push(format!("{n} sub-call{}", if n == 1 { "" } else { "s" }));
    }
    if let Some(t) = s.get("seconds").and_then(Value::as_f64) {
        facts.push(format!("{t:.1} s"));
    }
    if !facts.is_empty() {
        let _ = writeln!(out, "- **Outcome:** {}", facts.join(", "));
    }
    if let Some(e) = &run.error {
        let _ = writeln!(out, "- **Error:** {e}");
    }

    out.push_str("\n## Answer\n\n");
    match run.answer.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        Some(a) => {
            let _ = writeln!(out, "{a}\n");
        }
        None => out.push_str("_(no answer)_\n\n"),
    }

    let citations = run.citations.as_array().map(Vec::as_slice).unwrap_or(&[]);
    if !citations.is_empty() {
        out.push_str("## Sources\n\n");
        for c in citations {
            let status = str_of(c, "status").unwrap_or(if c["verified"] == true { "verified" } else { "failed" });
            let mark = match status {
                "verified" => "✓",
                "unchecked" => "?",
                _ => "✗",
            };
            let location = str_of(c, "location").or_else(|| str_of(c, "path")).unwrap_or("?");
            let note = match (str_of(c, "problem"), status) {
                (Some(p), _) => format!(" — {p}"),
                (None, "unchecked") => " — exists; the answer states no quote or number to check in it".into(),
                (None, _) if c["found"] == true => " — found among the lines the run read".into(),
                _ => String::new(),
            };
            let _ = writeln!(out, "- {mark} `{location}`{note}");
        }
        out.push('\n');
    }

    let notices: Vec<&str> = run
        .events
        .iter()
        .filter(|e| str_of(e, "type") == Some("notice"))
        .filter_map(|e| str_of(e, "message"))
        .collect();
    if !notices.is_empty() {
        out.push_str("## Notes\n\n");
        for n in notices {
            let _ = writeln!(out, "- {n}");
        }
        out.push('\n');
    }

    let turns = run.events.iter().any(|e| str_of(e, "type") == Some("iteration_started"));
    if turns {
        out.push_str("## Trajectory\n\n");
        let mut sub_calls = 0usize;
        let flush_sub = |out: &mut String, n: &mut usize| {
            if *n > 0 {
                let _ = writeln!(out, "_{n} sub-call{}_\n", if *n == 1 { "" } else { "s" });
                *n = 0;
            }
        };
        for e in &run.events {
            match str_of(e, "type") {
                Some("iteration_started") => {
                    flush_sub(&mut out, &mut sub_calls);
                    let _ = writeln!(out, "### Turn {}\n", e["index"]);
                }
                Some("code_block") => {
                    flush_sub(&mut out, &mut sub_calls);
                    fenced(&mut out, "python", str_of(e, "code").unwrap_or(""));
                }
                Some("repl_result") => {
                    flush_sub(&mut out, &mut sub_calls);
                    let r = &e["result"];
                    let mut text = [str_of(r, "stdout"), str_of(r, "value"), str_of(r, "stderr"), str_of(r, "error")]
                        .into_iter()
                        .flatten()
                        .map(str::trim_end)
                        .filter(|p| !p.is_empty())
                        .collect::<Vec<_>>()
                        .join("\n");
                    if text.is_empty() {
                        text = "(no output)".into();
                    }
                    if let Some((i, _)) = text.char_indices().nth(OUTPUT_CHARS) {
                        let more = text[i..].chars().count();
                        text = format!("{}\n… {more} more characters", &text[..i]);
                    }
                    fenced(&mut out, "text", &text);
                }
                Some("sub_call_finished") => sub_calls += 1,
                Some("error") => {
                    flush_sub(&mut out, &mut sub_calls);
                    let _ = writeln!(out, "> error: {}\n", str_of(e, "message").unwrap_or(""));
                }
                _ => {}
            }
        }
        flush_sub(&mut out, &mut sub_calls);
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_709_210_096_000), "2024-02-29 12:34 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn search_text_becomes_quoted_prefixes() {
        assert_eq!(fts_query("notice per").as_deref(), Some("\"notice\"* \"per\"*"));
        assert_eq!(
            fts_query("how many? -NOT \"x\" a:b").as_deref(),
            Some("\"how\"* \"many\"* \"NOT\"* \"x\"* \"a\"* \"b\"*")
        );
        assert_eq!(fts_query(" ?! "), None);
    }

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        let me = std::process::id();
        assert!(alive(me, process_start(me)));
        assert!(!alive(me, process_start(me).map(|s| s + 1)), "another process under a reused pid");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!alive(pid, None));
    }
}
