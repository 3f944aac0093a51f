//! The History panel's commands: the runs asked before (from the window or `quarry ask`, one
//! history in the catalog's database), one run whole, search, remove and export. Each is a plain
//! function over a [`History`] so tests drive it without a window; the Tauri wrappers in
//! [`super`] open the history of the [`AskState`]'s library.

use std::path::Path;

use serde::Deserialize;

use quarry_index::history::{ExportFormat, History, ListFilter, Run, RunStatus, RunSummary};

use super::{AskState, CommandError};

/// Which runs the panel lists.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HistoryQuery {
    #[serde(default)]
    pub collection: Option<String>,
    #[serde(default)]
    pub folder: Option<String>,
    #[serde(default)]
    pub status: Option<RunStatus>,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// The runs, newest first.
pub fn list(history: &History, query: HistoryQuery) -> Result<Vec<RunSummary>, CommandError> {
    let filter =
        ListFilter { collection: query.collection, folder: query.folder, status: query.status, limit: query.limit };
    Ok(history.list(&filter)?)
}

/// Run `id` with its answer, citations and events.
pub fn show(history: &History, id: i64) -> Result<Run, CommandError> {
    Ok(history.get(id)?)
}

/// The runs whose question or answer hold the words typed; every run (newest first) for an
/// empty box, so clearing the search shows the list again.
pub fn search(history: &History, text: &str) -> Result<Vec<RunSummary>, CommandError> {
    if text.trim().is_empty() {
        return list(history, HistoryQuery::default());
    }
    match history.search(text, 100) {
        // Punctuation alone ("?") matches nothing rather than failing the box.
        Err(quarry_index::Error::EmptySearch { .. }) => Ok(Vec::new()),
        r => Ok(r?),
    }
}

pub fn remove(history: &History, id: i64) -> Result<(), CommandError> {
    Ok(history.remove(id)?)
}

/// Run `id` as Markdown, JSON or JSON lines.
pub fn export(history: &History, id: i64, format: ExportFormat) -> Result<String, CommandError> {
    Ok(history.export(id, format)?)
}

/// The file name an export is offered under: `quarry-run-12.md`.
pub fn export_name(id: i64, format: ExportFormat) -> String {
    let ext = match format {
        ExportFormat::Markdown => "md",
        ExportFormat::Json => "json",
        ExportFormat::Jsonl => "jsonl",
    };
    format!("quarry-run-{id}.{ext}")
}

pub(super) fn open(state: &AskState) -> Result<History, CommandError> {
    Ok(state.history()?)
}

/// Writes an export where the person chose to save it.
pub fn save(history: &History, id: i64, format: ExportFormat, path: &Path) -> Result<String, CommandError> {
    let text = export(history, id, format)?;
    std::fs::write(path, text).map_err(|e| CommandError::new(format!("could not write {}: {e}", path.display())))?;
    Ok(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_index::history::{Finish, NewRun};
    use serde_json::json;

    fn history_with_runs(dir: &std::path::Path) -> (History, i64, i64) {
        let h = History::open_in(dir).unwrap();
        let a = h.start(&NewRun::new("Which lease renews automatically?", "rlm", "/data/leases".as_ref())).unwrap();
        h.append(a, &[json!({"type": "iteration_started", "index": 1}).to_string()]).unwrap();
        h.finish(
            a,
            &Finish {
                status: RunStatus::Done,
                answer: Some("The Acme lease (acme.txt:3).".into()),
                citations: json!([{"location": "acme.txt:3", "status": "verified", "verified": true}]),
                stats: json!({"stop_reason": "final", "iterations": 1}),
                error: None,
            },
        )
        .unwrap();
        let b = h.start(&NewRun::new("How many invoices?", "direct", "/data/invoices".as_ref())).unwrap();
        (h, a, b)
    }

    #[test]
    fn the_panel_lists_shows_searches_exports_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let (h, a, b) = history_with_runs(dir.path());
        let runs = list(&h, HistoryQuery::default()).unwrap();
        assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [b, a]);
        assert_eq!(runs[0].status, RunStatus::Running, "b is this process's, still answering");

        let run = show(&h, a).unwrap();
        assert_eq!(run.citations[0]["location"], "acme.txt:3");
        assert_eq!(run.events.len(), 1);

        assert_eq!(search(&h, "acme").unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), [a]);
        assert_eq!(search(&h, "  ").unwrap().len(), 2, "an empty box lists every run");
        assert!(search(&h, "?!").unwrap().is_empty());

        let md = export(&h, a, ExportFormat::Markdown).unwrap();
        assert!(md.starts_with("# Which lease renews automatically?"), "{md}");
        assert!(md.contains("- ✓ `acme.txt:3`"), "{md}");
        assert_eq!(export_name(a, ExportFormat::Markdown), format!("quarry-run-{a}.md"));
        let path = dir.path().join("out.json");
        save(&h, a, ExportFormat::Json, &path).unwrap();
        let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(saved["id"], a);

        remove(&h, a).unwrap();
        let err = show(&h, a).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("there is no run {a} in the history; `quarry history list` shows the runs there are")
        );
        let err = remove(&h, b).unwrap_err();
        assert!(err.to_string().contains(&format!("run {b} is still running")), "{err}");
    }

    #[test]
    fn the_query_reads_the_ui_s_json() {
        let q: HistoryQuery = serde_json::from_str(r#"{"status": "interrupted", "limit": 50}"#).unwrap();
        assert_eq!((q.status, q.limit, q.collection), (Some(RunStatus::Interrupted), Some(50), None));
    }
}
