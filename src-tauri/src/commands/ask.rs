//! Asking a question about a folder from the window: the same [`Analyst`] as `quarry ask`, its
//! events forwarded to the UI as they happen. Models are started on the first question and kept
//! for the next (starting the 1.5B engine costs seconds); the local engine and the REPL worker
//! are the `quarry` executable installed beside the app, supervised, so a llama.cpp abort or a
//! runaway Python block never takes the window down. Every question is recorded in the
//! history through the same [`Recorder`] as `quarry ask`'s.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize;

use quarry_index::history::{History, NewRun};
use quarry_index::Folder;
use quarry_rlm::{AnalystConfig, Answer, CancelToken, Event, Mode, ModelChoice, Models, Recorder};

use super::CommandError;

/// What the window asks.
#[derive(Debug, Clone, Deserialize)]
pub struct AskRequest {
    pub folder: String,
    pub question: String,
    pub mode: Mode,
    /// Catalog ids; `None` is the catalog's default for the role.
    #[serde(default)]
    pub root_model: Option<String>,
    #[serde(default)]
    pub sub_model: Option<String>,
}

/// The models kept between questions, and the run in progress.
#[derive(Default)]
pub struct AskState {
    models: tokio::sync::Mutex<Option<Started>>,
    running: Mutex<Option<CancelToken>>,
    /// The library whose history runs are recorded in; `None` is `quarry_index::data_dir()`,
    /// the CLI's, so the window and `quarry history` show the same runs.
    data_dir: Option<PathBuf>,
}

struct Started {
    root: Option<String>,
    sub: Option<String>,
    models: Models,
}

impl AskState {
    /// A state recording its runs in the library at `dir` (tests).
    pub fn with_data_dir(dir: &Path) -> AskState {
        AskState { data_dir: Some(dir.into()), ..AskState::default() }
    }

    /// The history runs are recorded in.
    pub fn history(&self) -> quarry_index::Result<History> {
        match &self.data_dir {
            Some(dir) => History::open_in(dir),
            None => History::open_default(),
        }
    }

    /// Stops the run in progress, if any; it ends at its next step with what it has.
    pub fn cancel(&self) -> bool {
        match &*self.running.lock().expect("running lock") {
            Some(flag) => {
                flag.cancel();
                true
            }
            None => false,
        }
    }

    /// Stops the local engine (on exit).
    pub async fn shutdown(&self) {
        if let Some(started) = self.models.lock().await.take() {
            started.models.shutdown().await;
        }
    }
}

/// The `quarry` executable beside this one (or `QUARRY_ENGINE`): it serves local models and
/// runs the REPL worker.
pub fn engine_path() -> Result<PathBuf, CommandError> {
    if let Some(p) = std::env::var_os("QUARRY_ENGINE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| CommandError::new(format!("cannot find the app's own path: {e}")))?;
    let beside = exe.with_file_name(format!("quarry{}", std::env::consts::EXE_SUFFIX));
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(CommandError::new(format!(
            "Quarry's engine is missing: there is no {} (build it with `cargo build --release -p quarry-cli`)",
            beside.display()
        )))
    }
}

/// Answers `request`, sending every event of the run to `on_event`.
pub async fn ask_with(
    state: &AskState,
    request: AskRequest,
    engine: &Path,
    mut on_event: impl FnMut(&Event) + Send,
) -> Result<Answer, CommandError> {
    let question = request.question.trim().to_string();
    if question.is_empty() {
        return Err(CommandError::new("Type a question first."));
    }
    let folder_path = PathBuf::from(request.folder.trim());
    if folder_path.as_os_str().is_empty() {
        return Err(CommandError::new("Choose a folder first."));
    }
    let folder = tokio::task::spawn_blocking(move || Folder::load(&folder_path))
        .await
        .map_err(|e| CommandError::new(format!("reading the folder failed: {e}")))??;

    let cancel = CancelToken::default();
    {
        let mut running = state.running.lock().expect("running lock");
        if running.is_some() {
            return Err(CommandError::new("A question is already being answered; cancel it or wait."));
        }
        *running = Some(cancel.clone());
    }
    let result = answer(state, &request, engine, folder, &question, cancel, &mut on_event).await;
    *state.running.lock().expect("running lock") = None;
    result
}

async fn answer(
    state: &AskState,
    request: &AskRequest,
    engine: &Path,
    folder: Folder,
    question: &str,
    cancel: CancelToken,
    on_event: &mut (impl FnMut(&Event) + Send),
) -> Result<Answer, CommandError> {
    let mut slot = state.models.lock().await;
    if slot.as_ref().is_some_and(|s| s.root != request.root_model || s.sub != request.sub_model) {
        if let Some(old) = slot.take() {
            old.models.shutdown().await;
        }
    }
    if slot.is_none() {
        let choice = ModelChoice {
            root: request.root_model.clone(),
            sub: request.sub_model.clone(),
            engine: Some(engine.to_path_buf()),
            ..ModelChoice::default()
        };
        let models = Models::start(&choice, |note| on_event(&Event::Notice { message: note.to_string() })).await?;
        *slot = Some(Started { root: request.root_model.clone(), sub: request.sub_model.clone(), models });
    }
    let started = slot.as_ref().expect("started above");
    let analyst = started.models.analyst(AnalystConfig::default());
    let mut run = NewRun::new(question, request.mode.name(), folder.root());
    run.models = started.models.described();
    let mut recorder = match state.history().and_then(|h| Recorder::start(h, &run)) {
        Ok(r) => Some(r),
        Err(e) => {
            // The answer matters more than its record: say so, and answer.
            on_event(&Event::Notice { message: format!("this question is not saved in the history: {e}") });
            None
        }
    };
    let result = analyst
        .answer(&folder, question, request.mode, cancel, |e| {
            if let Some(r) = &mut recorder {
                r.record(e);
            }
            on_event(e)
        })
        .await;
    if let Some(r) = recorder {
        if let Err(e) = r.finish(result.as_ref().map_err(|e| e.to_string())) {
            on_event(&Event::Notice { message: format!("this question was not fully saved in the history: {e}") });
        }
    }
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(folder: &str, question: &str) -> AskRequest {
        AskRequest {
            folder: folder.into(),
            question: question.into(),
            mode: Mode::Rlm,
            root_model: None,
            sub_model: None,
        }
    }

    #[tokio::test]
    async fn bad_input_is_one_sentence_naming_what_is_wrong() {
        let state = AskState::default();
        let engine = Path::new("/nonexistent/quarry");
        let err = ask_with(&state, request("", "Why?"), engine, |_| {}).await.unwrap_err();
        assert_eq!(err.to_string(), "Choose a folder first.");
        let err = ask_with(&state, request("/tmp", "  "), engine, |_| {}).await.unwrap_err();
        assert_eq!(err.to_string(), "Type a question first.");
        let err = ask_with(&state, request("/nonexistent/data-room", "Why?"), engine, |_| {}).await.unwrap_err();
        assert!(err.to_string().contains("/nonexistent/data-room"), "{err}");
        assert!(!state.cancel(), "nothing is running after a refusal");
    }

    /// The window's ask end to end with the real 0.5B model and the `quarry` engine of this
    /// build: the run lands in the history with the answer the window got.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_window_s_ask_records_its_run_in_the_history() {
        const SMALL: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";
        let engine = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/quarry");
        assert!(engine.is_file(), "{} is missing: cargo build --release --workspace", engine.display());
        let store = quarry_models::ModelStore::from_env();
        assert!(store.resolve(SMALL).is_ok(), "{SMALL} must be installed (`make test` fetches it)");
        let folder = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("memo.txt"), "Facilities memo.\nThe storage room code is 7391.\n").unwrap();
        let data = tempfile::tempdir().unwrap();
        let state = AskState::with_data_dir(data.path());
        let mut request = request(folder.path().to_str().unwrap(), "What is the storage room code?");
        request.mode = Mode::Direct;
        request.root_model = Some(SMALL.into());
        request.sub_model = Some(SMALL.into());
        let mut events = 0;
        let answer = ask_with(&state, request, &engine, |_| events += 1).await.unwrap();
        state.shutdown().await;

        let h = state.history().unwrap();
        let runs = h.list(&Default::default()).unwrap();
        assert_eq!(runs.len(), 1);
        let run = h.get(runs[0].id).unwrap();
        assert_eq!(run.status, quarry_index::history::RunStatus::Done);
        assert_eq!(run.question, "What is the storage room code?");
        assert_eq!(run.answer, answer.answer);
        assert_eq!(run.mode, "direct");
        assert_eq!(run.models["root"], SMALL);
        assert!(
            !run.events.is_empty() && events >= run.events.len(),
            "{events} events seen, {} stored",
            run.events.len()
        );
    }

    #[test]
    fn the_request_reads_the_ui_s_json() {
        let r: AskRequest = serde_json::from_str(
            r#"{"folder": "/d", "question": "Q?", "mode": "rag", "root_model": "qwen2.5-coder-0.5b-instruct-q4_k_m"}"#,
        )
        .unwrap();
        assert_eq!(r.mode, Mode::Rag);
        assert_eq!(r.sub_model, None);
    }
}
