//! Asking a question about a folder from the window: the same [`Analyst`] as `quarry ask`, its
//! events forwarded to the UI as they happen. Models are started on the first question and kept
//! for the next (starting the 1.5B engine costs seconds); the local engine and the REPL worker
//! are the `quarry` executable installed beside the app, supervised, so a llama.cpp abort or a
//! runaway Python block never takes the window down. Every question is recorded in the
//! history through the same [`Recorder`] as `quarry ask`'s. Each question reads the saved
//! settings once (models, machine, budgets, OCR), so a changed setting applies to the next one.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize;

use quarry_index::history::{History, NewRun};
use quarry_index::{Folder, LoadOptions};
use quarry_rlm::{AnalystConfig, Answer, CancelToken, Event, Mode, ModelChoice, Models, Recorder};

use super::settings::{self, Settings, Source};
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
    /// Budgets for this question; `None` is the Settings panel's default.
    #[serde(default)]
    pub max_iterations: Option<u32>,
    #[serde(default)]
    pub max_sub_calls: Option<u32>,
    /// 0: no time limit.
    #[serde(default)]
    pub max_seconds: Option<u32>,
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
    /// What they were started with: another choice (a setting changed) starts them again.
    choice: ModelChoice,
    models: Models,
}

impl AskState {
    /// A state recording its runs in the library at `dir` (tests).
    pub fn with_data_dir(dir: &Path) -> AskState {
        AskState { data_dir: Some(dir.into()), ..AskState::default() }
    }

    /// Where the settings (and API keys) are read from: the same library as the history.
    pub fn settings_dir(&self) -> Result<PathBuf, CommandError> {
        match &self.data_dir {
            Some(dir) => Ok(dir.clone()),
            None => settings::data_dir(),
        }
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
    // Read once: the whole question uses one version of the settings.
    let settings = settings::load(&state.settings_dir()?)?;
    let options = load_options(LoadOptions::default(), &settings);
    let folder = tokio::task::spawn_blocking(move || Folder::load_with(&folder_path, &options, &|_| {}, None))
        .await
        .map_err(|e| CommandError::new(format!("reading the folder failed: {e}")))??;
    let choice = model_choice(&settings, &state.settings_dir()?, &request, engine)?;
    let config = analyst_config(&settings, &request);

    let cancel = CancelToken::default();
    {
        let mut running = state.running.lock().expect("running lock");
        if running.is_some() {
            return Err(CommandError::new("A question is already being answered; cancel it or wait."));
        }
        *running = Some(cancel.clone());
    }
    let result = answer(state, &request, choice, config, folder, &question, cancel, &mut on_event).await;
    *state.running.lock().expect("running lock") = None;
    result
}

/// How the folder is read: `base` (the app's extractor) with OCR as the settings say.
pub fn load_options(mut base: LoadOptions, settings: &Settings) -> LoadOptions {
    if let Some(extractor) = &mut base.extractor {
        extractor.ocr = settings.ocr;
    }
    base
}

/// The models for `request`: each role as the settings say (a local catalog model, or an
/// endpoint with the key stored for that role in `dir`), unless the form names a local model;
/// the machine settings for the local engine.
pub fn model_choice(
    settings: &Settings,
    dir: &Path,
    request: &AskRequest,
    engine: &Path,
) -> Result<ModelChoice, CommandError> {
    let mut choice = ModelChoice {
        ctx: settings.ctx_size as usize,
        threads: settings.threads.map(|t| t as usize),
        gpu_layers: settings.gpu_layers,
        engine: Some(engine.to_path_buf()),
        ..ModelChoice::default()
    };
    let non_empty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    for (role, form, setting) in
        [("root", &request.root_model, &settings.root), ("sub", &request.sub_model, &settings.sub)]
    {
        let form = form.as_deref().and_then(non_empty);
        let (model, url, key) = match (form, setting.source) {
            (Some(id), _) => (Some(id), None, None),
            (None, Source::Local) => (non_empty(&setting.model), None, None),
            (None, Source::Endpoint) => {
                // A hand-edited settings.json can name an endpoint without its URL.
                let url = non_empty(&setting.url).ok_or_else(|| {
                    CommandError::new(format!(
                        "the {role} model's endpoint URL is empty; enter it in Settings or choose a local model"
                    ))
                })?;
                (non_empty(&setting.model), Some(url), settings::key_for(dir, role)?)
            }
        };
        if role == "root" {
            (choice.root, choice.root_url, choice.api_key) = (model, url, key);
        } else {
            (choice.sub, choice.sub_url, choice.sub_api_key) = (model, url, key);
        }
    }
    Ok(choice)
}

/// The analyst for `request`: its window is the settings' context size, and each budget the
/// request leaves unset is the settings' default.
pub fn analyst_config(settings: &Settings, request: &AskRequest) -> AnalystConfig {
    let mut config = AnalystConfig { window: settings.ctx_size as usize, ..AnalystConfig::default() };
    let budget = &mut config.rlm.budget;
    budget.max_iterations = request.max_iterations.unwrap_or(settings.budgets.max_iterations) as usize;
    budget.max_sub_calls = request.max_sub_calls.unwrap_or(settings.budgets.max_sub_calls) as usize;
    budget.wall_clock = match request.max_seconds.unwrap_or(settings.budgets.max_seconds) {
        0 => None,
        s => Some(std::time::Duration::from_secs(s.into())),
    };
    config
}

#[allow(clippy::too_many_arguments)]
async fn answer(
    state: &AskState,
    request: &AskRequest,
    choice: ModelChoice,
    config: AnalystConfig,
    folder: Folder,
    question: &str,
    cancel: CancelToken,
    on_event: &mut (impl FnMut(&Event) + Send),
) -> Result<Answer, CommandError> {
    let mut slot = state.models.lock().await;
    if slot.as_ref().is_some_and(|s| s.choice != choice) {
        if let Some(old) = slot.take() {
            old.models.shutdown().await;
        }
    }
    if slot.is_none() {
        let models = Models::start(&choice, |note| on_event(&Event::Notice { message: note.to_string() })).await?;
        *slot = Some(Started { choice, models });
    }
    let started = slot.as_ref().expect("started above");
    let analyst = started.models.analyst(config);
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
            max_iterations: None,
            max_sub_calls: None,
            max_seconds: None,
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

    fn endpoint(url: &str, model: &str) -> settings::ModelSetting {
        settings::ModelSetting { source: Source::Endpoint, model: model.into(), url: url.into(), has_key: false }
    }

    /// Saves `s` (and a root key) in `dir` as the Settings panel does.
    fn save(dir: &Path, s: &Settings, root_key: Option<&str>) {
        let request = settings::SaveRequest { settings: s.clone(), root_key: root_key.map(Into::into), sub_key: None };
        settings::save(dir, request).unwrap();
    }

    #[test]
    fn an_endpoint_root_in_the_settings_is_asked_with_its_url_model_and_stored_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings {
            root: endpoint("http://gpu-box:8000/v1", "qwen2.5-coder-7b-instruct"),
            threads: Some(6),
            ctx_size: 16_384,
            gpu_layers: 99,
            ..Settings::default()
        };
        save(dir.path(), &s, Some("sk-root-123"));
        let loaded = settings::load(dir.path()).unwrap();
        let engine = Path::new("/opt/quarry");
        let c = model_choice(&loaded, dir.path(), &request("/d", "Q?"), engine).unwrap();
        assert_eq!(c.root_url.as_deref(), Some("http://gpu-box:8000/v1"));
        assert_eq!(c.root.as_deref(), Some("qwen2.5-coder-7b-instruct"));
        assert_eq!(c.api_key.as_deref(), Some("sk-root-123"));
        assert_eq!((c.sub.as_deref(), c.sub_url.as_deref(), c.sub_api_key.as_deref()), (None, None, None));
        assert_eq!((c.threads, c.ctx, c.gpu_layers), (Some(6), 16_384, 99));
        assert_eq!(c.engine.as_deref(), Some(engine));
    }

    #[test]
    fn a_model_named_in_the_form_overrides_the_settings() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings {
            root: endpoint("http://gpu-box:8000/v1", "big"),
            sub: settings::ModelSetting { model: "qwen2.5-coder-1.5b-instruct-q4_k_m".into(), ..Default::default() },
            ..Settings::default()
        };
        save(dir.path(), &s, Some("sk-root-123"));
        let mut r = request("/d", "Q?");
        let c = model_choice(&s, dir.path(), &r, Path::new("/q")).unwrap();
        assert_eq!(c.sub.as_deref(), Some("qwen2.5-coder-1.5b-instruct-q4_k_m"), "the setting's local model");
        r.root_model = Some("qwen2.5-coder-0.5b-instruct-q4_k_m".into());
        r.sub_model = Some("qwen2.5-coder-0.5b-instruct-q4_k_m".into());
        let c = model_choice(&s, dir.path(), &r, Path::new("/q")).unwrap();
        assert_eq!(c.root.as_deref(), Some("qwen2.5-coder-0.5b-instruct-q4_k_m"));
        assert_eq!((c.root_url, c.api_key), (None, None), "a local model chosen in the form gets no endpoint or key");
        assert_eq!(c.sub.as_deref(), Some("qwen2.5-coder-0.5b-instruct-q4_k_m"));
    }

    #[test]
    fn an_endpoint_without_its_url_is_one_sentence_naming_the_role() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings { sub: endpoint(" ", "m"), ..Settings::default() };
        let err = model_choice(&s, dir.path(), &request("/d", "Q?"), Path::new("/q")).unwrap_err().to_string();
        assert!(err.starts_with("the sub model's endpoint URL is empty"), "{err}");
    }

    #[test]
    fn budgets_the_request_leaves_unset_are_the_settings_defaults() {
        let s = Settings {
            budgets: settings::Budgets { max_iterations: 5, max_sub_calls: 40, max_seconds: 90 },
            ctx_size: 4096,
            ..Settings::default()
        };
        let mut r = request("/d", "Q?");
        let c = analyst_config(&s, &r);
        assert_eq!((c.rlm.budget.max_iterations, c.rlm.budget.max_sub_calls), (5, 40));
        assert_eq!(c.rlm.budget.wall_clock, Some(std::time::Duration::from_secs(90)));
        assert_eq!(c.window, 4096);
        r.max_iterations = Some(3);
        r.max_seconds = Some(0);
        let c = analyst_config(&s, &r);
        assert_eq!((c.rlm.budget.max_iterations, c.rlm.budget.max_sub_calls), (3, 40));
        assert_eq!(c.rlm.budget.wall_clock, None, "0 s is no time limit");
    }

    #[test]
    fn ocr_off_in_the_settings_reaches_the_folder_reading() {
        let base = LoadOptions { extractor: Some(quarry_index::ExtractorConfig::default()), workers: 1 };
        assert!(base.extractor.as_ref().unwrap().ocr, "OCR is on unless turned off");
        let off = Settings { ocr: false, ..Settings::default() };
        assert!(!load_options(base.clone(), &off).extractor.unwrap().ocr);
        assert!(load_options(base, &Settings::default()).extractor.unwrap().ocr);
    }

    /// An OpenAI-compatible stand-in: every chat is answered "The code is 7391."; each request's
    /// head (with its Authorization header) is kept.
    fn stand_in() -> (String, std::sync::Arc<Mutex<Vec<String>>>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        let heads = std::sync::Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let (status, reply) = if head.starts_with("POST /v1/chat/completions") {
                    let answer = serde_json::json!({
                        "choices": [{"message": {"role": "assistant", "content": "The code is 7391."}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35},
                    });
                    ("200 OK", answer.to_string())
                } else {
                    ("404 Not Found", "{}".to_string())
                };
                seen.lock().unwrap().push(head);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            }
        });
        (base, heads)
    }

    /// A question asked through endpoints from the settings: the stored key is sent to the
    /// endpoint, and is in nothing the window gets or the history keeps.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_stored_key_reaches_the_endpoint_and_nothing_the_window_sees_or_the_history_keeps() {
        const KEY: &str = "sk-quarry-test-5ec2e7";
        let (url, heads) = stand_in();
        let folder = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("memo.txt"), "Facilities memo.\nThe storage room code is 7391.\n").unwrap();
        let data = tempfile::tempdir().unwrap();
        let s =
            Settings { root: endpoint(&url, "remote-root"), sub: endpoint(&url, "remote-sub"), ..Settings::default() };
        save(data.path(), &s, Some(KEY));
        let state = AskState::with_data_dir(data.path());
        let mut r = request(folder.path().to_str().unwrap(), "What is the storage room code?");
        r.mode = Mode::Direct;
        let mut events = Vec::new();
        let result =
            ask_with(&state, r, Path::new("/nonexistent/quarry"), |e| events.push(serde_json::to_string(e).unwrap()))
                .await;
        state.shutdown().await;
        let answer = result.unwrap();
        assert_eq!(answer.answer.as_deref(), Some("The code is 7391."));

        let heads = heads.lock().unwrap().clone();
        let chats: Vec<_> = heads.iter().filter(|h| h.starts_with("POST /v1/chat/completions")).collect();
        assert!(!chats.is_empty(), "the endpoint was asked: {heads:?}");
        for h in &chats {
            assert!(
                h.to_ascii_lowercase().contains(&format!("authorization: bearer {KEY}").to_ascii_lowercase()),
                "{h}"
            );
        }

        let h = state.history().unwrap();
        let runs = h.list(&Default::default()).unwrap();
        assert_eq!(runs.len(), 1);
        let run = h.get(runs[0].id).unwrap();
        assert_eq!(run.models["root_url"], url.as_str());
        let recorded = serde_json::to_string(&run).unwrap();
        assert!(!recorded.contains(KEY), "the history run holds the key: {recorded}");
        assert!(!events.is_empty());
        for e in &events {
            assert!(!e.contains(KEY), "an event holds the key: {e}");
        }
        assert!(!serde_json::to_string(&answer).unwrap().contains(KEY));
        let shown = serde_json::to_string(&settings::load(data.path()).unwrap()).unwrap();
        assert!(!shown.contains(KEY));
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
