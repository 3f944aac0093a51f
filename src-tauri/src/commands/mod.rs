//! Commands the web UI calls through `ui/src/ipc.ts`. Each is a plain function over the library
//! crates, wrapped for Tauri only at the edge, so tests call them directly.

use std::sync::Arc;

use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

use quarry_models::{ModelStore, Status};
use quarry_rlm::{Answer, Event};

pub mod ask;
pub mod history;
pub mod models;
pub mod settings;

pub use ask::{AskRequest, AskState};
pub use history::HistoryQuery;

use quarry_index::history::{ExportFormat, Run, RunSummary};

/// A command failure as the UI shows it: one sentence.
#[derive(Debug, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    message: String,
}

impl CommandError {
    pub fn new(message: impl Into<String>) -> CommandError {
        CommandError { message: message.into() }
    }
}

/// Every library error is already one sentence with its fix, so the window shows it as it is.
macro_rules! one_sentence {
    ($($error:ty),*) => {$(
        impl From<$error> for CommandError {
            fn from(e: $error) -> Self {
                CommandError { message: e.to_string() }
            }
        }
    )*};
}

one_sentence!(quarry_models::Error, quarry_llm::Error, quarry_index::Error, quarry_rlm::Error);

#[derive(Debug, Serialize)]
pub struct ModelInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub params: String,
    pub quantization: String,
    pub size_bytes: Option<u64>,
    pub license: String,
    pub installed: bool,
    /// Bytes of a paused (or interrupted) download kept for resuming.
    pub partial_bytes: Option<u64>,
    /// One of the models Quarry uses when none is chosen: offered first on a first run.
    pub default: bool,
    /// Imported from the person's own file (deleting forgets it, the file stays).
    pub imported: bool,
}

#[derive(Debug, Serialize)]
pub struct AppInfo {
    pub version: String,
    pub models_dir: String,
    pub models: Vec<ModelInfo>,
}

/// What the window shows on start: the version, and the models with their install state.
#[tauri::command]
pub fn app_info() -> Result<AppInfo, CommandError> {
    app_info_for(&ModelStore::from_env())
}

pub fn app_info_for(store: &ModelStore) -> Result<AppInfo, CommandError> {
    let catalog = store.catalog()?;
    let models = catalog
        .models()
        .iter()
        .map(|m| ModelInfo {
            id: m.id.clone(),
            name: m.name.clone(),
            role: m.role.to_string(),
            params: m.params.clone(),
            quantization: m.quantization.clone(),
            size_bytes: m.size,
            license: m.license.clone(),
            installed: matches!(store.status(m), Status::Installed { .. }),
            partial_bytes: models::partial_bytes(store, m),
            default: !m.default_for.is_empty(),
            imported: m.path.is_some(),
        })
        .collect();
    Ok(AppInfo { version: env!("CARGO_PKG_VERSION").into(), models_dir: store.dir().display().to_string(), models })
}

/// Answers a question about a folder; every event of the run goes to `on_event` as it happens,
/// and the answer (with its checked citations) is the result.
#[tauri::command]
pub async fn ask(
    state: State<'_, Arc<AskState>>,
    request: AskRequest,
    on_event: Channel<Event>,
) -> Result<Answer, CommandError> {
    let engine = ask::engine_path()?;
    ask::ask_with(&state, request, &engine, |e| {
        // A closed window drops the channel; the run goes on to its end regardless.
        let _ = on_event.send(e.clone());
    })
    .await
}

/// Stops the question being answered; it ends at its next step with what it has.
#[tauri::command]
pub fn cancel_ask(state: State<'_, Arc<AskState>>) -> bool {
    state.cancel()
}

/// The runs asked before (here or with `quarry ask`), newest first.
#[tauri::command]
pub fn history_list(
    state: State<'_, Arc<AskState>>,
    query: Option<HistoryQuery>,
) -> Result<Vec<RunSummary>, CommandError> {
    history::list(&history::open(&state)?, query.unwrap_or_default())
}

/// One run with its answer, citations and events.
#[tauri::command]
pub fn history_show(state: State<'_, Arc<AskState>>, id: i64) -> Result<Run, CommandError> {
    history::show(&history::open(&state)?, id)
}

/// The runs whose question or answer hold the words typed.
#[tauri::command]
pub fn history_search(state: State<'_, Arc<AskState>>, text: String) -> Result<Vec<RunSummary>, CommandError> {
    history::search(&history::open(&state)?, &text)
}

#[tauri::command]
pub fn history_rm(state: State<'_, Arc<AskState>>, id: i64) -> Result<(), CommandError> {
    history::remove(&history::open(&state)?, id)
}

/// Saves a run as Markdown, JSON or JSON lines where the person chooses (the native save
/// dialog); the path written, or `None` when the dialog is cancelled.
#[tauri::command]
pub async fn history_export(
    app: tauri::AppHandle,
    state: State<'_, Arc<AskState>>,
    id: i64,
    format: ExportFormat,
) -> Result<Option<String>, CommandError> {
    // Read first: a run that is gone is said before a dialog opens for nothing.
    let h = history::open(&state)?;
    h.get(id)?;
    let name = history::export_name(id, format);
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.run_on_main_thread(move || {
        let picked = rfd::FileDialog::new().set_title("Save the run").set_file_name(name).save_file();
        let _ = tx.send(picked);
    })
    .map_err(|e| CommandError::new(format!("the save dialog could not open: {e}")))?;
    let picked = rx.await.map_err(|_| CommandError::new("the save dialog closed unexpectedly"))?;
    match picked {
        Some(path) => history::save(&h, id, format, &path).map(Some),
        None => Ok(None),
    }
}

/// The native folder chooser; `None` when the person cancels it.
#[tauri::command]
pub async fn pick_folder(app: tauri::AppHandle) -> Result<Option<String>, CommandError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // GTK dialogs belong on the main thread.
    app.run_on_main_thread(move || {
        let picked = rfd::FileDialog::new().set_title("Choose a folder to ask about").pick_folder();
        let _ = tx.send(picked.map(|p| p.display().to_string()));
    })
    .map_err(|e| CommandError::new(format!("the folder chooser could not open: {e}")))?;
    rx.await.map_err(|_| CommandError::new("the folder chooser closed unexpectedly"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_info_lists_the_catalog_with_install_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        let info = app_info_for(&store).unwrap();
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        let small = info.models.iter().find(|m| m.id == "qwen2.5-coder-0.5b-instruct-q4_k_m").unwrap();
        assert!(!small.installed);
        assert_eq!(small.size_bytes, Some(491_400_064));
        assert_eq!(small.role, "sub");
        assert_eq!(small.license, "Apache-2.0");
        assert!(small.default && !small.imported && small.partial_bytes.is_none());
        let defaults: Vec<_> = info.models.iter().filter(|m| m.default).map(|m| m.role.as_str()).collect();
        assert_eq!(defaults, ["sub", "root"], "a first run offers one model per role");
    }

    #[test]
    fn a_broken_local_registry_is_one_sentence_for_the_ui() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("local.toml"), "[[model]\n").unwrap();
        let err = app_info_for(&ModelStore::new(dir.path())).unwrap_err();
        let json = serde_json::to_value(&err).unwrap();
        assert!(json["message"].as_str().unwrap().contains("local.toml is invalid"), "{json}");
    }
}
