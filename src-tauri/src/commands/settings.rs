//! The Settings panel's commands: which root and sub model (local, or an OpenAI-compatible
//! endpoint), the machine (threads, context size, GPU layers), the default budgets, OCR and the
//! theme, kept as `settings.json` in the app's data dir. API keys live apart, in
//! `api-keys.json` with mode 0600, so a settings file shared in a bug report, the history and the
//! logs never hold one; the settings the window gets back only say whether a key is stored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use quarry_llm::{ChatMessage, ChatRequest, LanguageModel, OpenAiClient};

use super::CommandError;

pub const SETTINGS_FILE: &str = "settings.json";
pub const KEYS_FILE: &str = "api-keys.json";

/// Local (a catalog model run by Quarry's engine) or an OpenAI-compatible endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    #[default]
    Local,
    Endpoint,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelSetting {
    pub source: Source,
    /// A catalog id for a local model (empty: the catalog's default for the role), or the
    /// model's name at the endpoint.
    pub model: String,
    /// The endpoint's API root, e.g. `http://gpu-box:8000/v1`.
    pub url: String,
    /// Whether a key is stored for this model; set by [`load`], ignored by [`save`].
    pub has_key: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Budgets {
    pub max_iterations: u32,
    pub max_sub_calls: u32,
    /// 0: no time limit.
    pub max_seconds: u32,
}

impl Default for Budgets {
    fn default() -> Self {
        // quarry_rlm::Budget's defaults, so a fresh window asks as `quarry ask` does.
        let b = quarry_rlm::Budget::default();
        Budgets {
            max_iterations: b.max_iterations as u32,
            max_sub_calls: b.max_sub_calls as u32,
            max_seconds: b.wall_clock.map_or(0, |d| d.as_secs() as u32),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    Light,
    Dark,
    #[default]
    System,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub root: ModelSetting,
    pub sub: ModelSetting,
    /// CPU threads for the engine; `None` is the engine's own choice (measured).
    pub threads: Option<u32>,
    pub ctx_size: u32,
    pub gpu_layers: u32,
    pub budgets: Budgets,
    pub ocr: bool,
    pub theme: Theme,
}

impl Default for Settings {
    fn default() -> Self {
        let choice = quarry_rlm::ModelChoice::default();
        Settings {
            root: ModelSetting::default(),
            sub: ModelSetting::default(),
            threads: None,
            ctx_size: choice.ctx as u32,
            gpu_layers: choice.gpu_layers,
            budgets: Budgets::default(),
            ocr: true,
            theme: Theme::System,
        }
    }
}

/// What the window saves: the settings, and a key per role (`None` keeps the stored one, an
/// empty string removes it). No `Debug`: it holds the keys, and nothing may print them.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct SaveRequest {
    pub settings: Settings,
    pub root_key: Option<String>,
    pub sub_key: Option<String>,
}

/// The settings in `dir`, with `has_key` filled in and no key anywhere; defaults when none
/// were saved.
pub fn load(dir: &Path) -> Result<Settings, CommandError> {
    let path = dir.join(SETTINGS_FILE);
    let mut settings = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str::<Settings>(&text).map_err(|e| {
            CommandError::new(format!(
                "{} is invalid ({e}); fix it or delete it to start from the defaults",
                path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
        Err(e) => return Err(CommandError::new(format!("{} could not be read ({e})", path.display()))),
    };
    let keys = read_keys(dir)?;
    settings.root.has_key = keys.contains_key("root");
    settings.sub.has_key = keys.contains_key("sub");
    Ok(settings)
}

/// Checks and writes the settings and keys; the settings as [`load`] now returns them.
pub fn save(dir: &Path, request: SaveRequest) -> Result<Settings, CommandError> {
    let mut settings = request.settings;
    validate(&settings)?;
    settings.root.has_key = false;
    settings.sub.has_key = false;
    std::fs::create_dir_all(dir).map_err(|e| {
        CommandError::new(format!("{} could not be created ({e}); check its permissions", dir.display()))
    })?;
    let text = serde_json::to_string_pretty(&settings).expect("settings serialise");
    write_atomic(&dir.join(SETTINGS_FILE), text.as_bytes(), None)?;
    if request.root_key.is_some() || request.sub_key.is_some() {
        let mut keys = read_keys(dir)?;
        for (role, key) in [("root", request.root_key), ("sub", request.sub_key)] {
            match key.map(|k| k.trim().to_string()) {
                Some(k) if k.is_empty() => {
                    keys.remove(role);
                }
                Some(k) => {
                    keys.insert(role.into(), k);
                }
                None => {}
            }
        }
        let text = serde_json::to_string_pretty(&keys).expect("keys serialise");
        write_atomic(&dir.join(KEYS_FILE), text.as_bytes(), Some(0o600))?;
    }
    load(dir)
}

/// The stored key for `role` ("root" or "sub"), for starting an endpoint model.
pub fn key_for(dir: &Path, role: &str) -> Result<Option<String>, CommandError> {
    Ok(read_keys(dir)?.remove(role))
}

fn validate(s: &Settings) -> Result<(), CommandError> {
    for (role, m) in [("root", &s.root), ("sub", &s.sub)] {
        if m.source == Source::Endpoint {
            let url = m.url.trim();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(CommandError::new(format!(
                    "the {role} model's endpoint URL must start with http:// or https:// (e.g. http://gpu-box:8000/v1)"
                )));
            }
            if m.model.trim().is_empty() {
                return Err(CommandError::new(format!(
                    "name the {role} model as the endpoint knows it (e.g. qwen2.5-coder-7b-instruct)"
                )));
            }
        }
    }
    if s.threads.is_some_and(|t| t == 0 || t > 1024) {
        return Err(CommandError::new("threads must be between 1 and 1024, or empty for the engine's choice"));
    }
    if !(512..=1_048_576).contains(&s.ctx_size) {
        return Err(CommandError::new("the context size must be between 512 and 1048576 tokens"));
    }
    if s.budgets.max_iterations == 0 || s.budgets.max_sub_calls == 0 {
        return Err(CommandError::new("the turn and sub-call budgets must be at least 1"));
    }
    Ok(())
}

fn read_keys(dir: &Path) -> Result<BTreeMap<String, String>, CommandError> {
    let path = dir.join(KEYS_FILE);
    match std::fs::read_to_string(&path) {
        // The keys are never echoed, not even in this error.
        Ok(text) => serde_json::from_str(&text).map_err(|_| {
            CommandError::new(format!("{} is not valid JSON; delete it and enter the API keys again", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(CommandError::new(format!("{} could not be read ({e})", path.display()))),
    }
}

/// Writes through a temporary file (created with `mode` when given), so a crash never leaves a
/// half-written file and a key file is never readable by others, not even for a moment.
fn write_atomic(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), CommandError> {
    use std::io::Write;
    let fail = |e: std::io::Error| {
        CommandError::new(format!("{} could not be written ({e}); check the folder's permissions", path.display()))
    };
    let tmp: PathBuf = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(fail)?;
    file.write_all(bytes).and_then(|_| file.sync_all()).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// Asks the role's endpoint for one token; Ok is a sentence saying it answered.
pub async fn test_connection(dir: &Path, role: &str, setting: &ModelSetting) -> Result<String, CommandError> {
    if setting.source != Source::Endpoint {
        return Err(CommandError::new(format!(
            "the {role} model is local; choose an OpenAI-compatible endpoint to test a connection"
        )));
    }
    let probe = Settings { root: setting.clone(), sub: ModelSetting::default(), ..Settings::default() };
    validate(&probe)
        .map_err(|e| CommandError::new(e.to_string().replace("the root model", &format!("the {role} model"))))?;
    let client = OpenAiClient::new(setting.url.trim(), setting.model.trim(), key_for(dir, role)?)?;
    let mut request = ChatRequest::new(vec![ChatMessage::user("Reply with OK.")]);
    request.max_tokens = Some(1);
    match tokio::time::timeout(Duration::from_secs(20), client.chat(&request)).await {
        Ok(Ok(_)) => Ok(format!("{} answered as {}.", setting.url.trim(), setting.model.trim())),
        Ok(Err(e)) => Err(CommandError::new(format!("{e}; check the URL, the model name and the key"))),
        Err(_) => Err(CommandError::new(format!(
            "{} did not answer within 20 s; check that the server is running and reachable",
            setting.url.trim()
        ))),
    }
}

/// The app's data dir: `QUARRY_DATA_DIR`, else the user's (where the history lives too).
pub fn data_dir() -> Result<PathBuf, CommandError> {
    Ok(quarry_index::collection::data_dir()?)
}

#[tauri::command]
pub fn get_settings() -> Result<Settings, CommandError> {
    load(&data_dir()?)
}

#[tauri::command]
pub fn save_settings(request: SaveRequest) -> Result<Settings, CommandError> {
    save(&data_dir()?, request)
}

/// Tests the endpoint of `role` as typed (saved or not), with the stored key.
#[tauri::command]
pub async fn test_model_connection(role: String, setting: ModelSetting) -> Result<String, CommandError> {
    test_connection(&data_dir()?, &role, &setting).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str, model: &str) -> ModelSetting {
        ModelSetting { source: Source::Endpoint, model: model.into(), url: url.into(), has_key: false }
    }

    #[test]
    fn settings_persist_and_start_from_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = load(dir.path()).unwrap();
        assert_eq!(fresh, Settings::default());
        assert_eq!((fresh.budgets.max_iterations, fresh.ctx_size, fresh.theme), (12, 8192, Theme::System));
        let mut s = fresh.clone();
        s.root = endpoint("http://gpu-box:8000/v1", "qwen2.5-coder-7b-instruct");
        s.threads = Some(6);
        s.gpu_layers = 99;
        s.ocr = false;
        s.theme = Theme::Dark;
        s.budgets.max_sub_calls = 50;
        let saved = save(dir.path(), SaveRequest { settings: s.clone(), ..SaveRequest::default() }).unwrap();
        assert_eq!(saved, s);
        assert_eq!(load(dir.path()).unwrap(), s, "read back after a restart");
        let text = std::fs::read_to_string(dir.path().join(SETTINGS_FILE)).unwrap();
        assert!(text.contains("\"theme\": \"dark\""), "{text}");
    }

    #[test]
    fn the_key_is_in_a_0600_file_and_never_in_the_settings_or_their_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = Settings { sub: endpoint("https://api.example.com/v1", "small"), ..Settings::default() };
        let key = "sk-test-4242-secret";
        let saved =
            save(dir.path(), SaveRequest { settings: s.clone(), sub_key: Some(key.into()), root_key: None }).unwrap();
        assert!(saved.sub.has_key && !saved.root.has_key);
        let mode = std::fs::metadata(dir.path().join(KEYS_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!serde_json::to_string(&saved).unwrap().contains(key), "the window never gets the key");
        assert!(!std::fs::read_to_string(dir.path().join(SETTINGS_FILE)).unwrap().contains(key));
        assert_eq!(key_for(dir.path(), "sub").unwrap().as_deref(), Some(key));

        // Saving again without a key keeps it; an empty key removes it.
        let again = save(dir.path(), SaveRequest { settings: s.clone(), ..SaveRequest::default() }).unwrap();
        assert!(again.sub.has_key);
        let removed =
            save(dir.path(), SaveRequest { settings: s, sub_key: Some(String::new()), root_key: None }).unwrap();
        assert!(!removed.sub.has_key);
        assert_eq!(key_for(dir.path(), "sub").unwrap(), None);
    }

    #[test]
    fn bad_settings_are_one_sentence_naming_the_field_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Settings { root: endpoint("gpu-box:8000", "m"), ..Settings::default() };
        let err = save(dir.path(), SaveRequest { settings: s.clone(), ..SaveRequest::default() }).unwrap_err();
        assert!(err.to_string().starts_with("the root model's endpoint URL must start with http://"), "{err}");
        s.root = ModelSetting::default();
        s.ctx_size = 10;
        let err = save(dir.path(), SaveRequest { settings: s, ..SaveRequest::default() }).unwrap_err();
        assert!(err.to_string().starts_with("the context size must be"), "{err}");
        assert!(!dir.path().join(SETTINGS_FILE).exists());
        std::fs::write(dir.path().join(SETTINGS_FILE), "{ not json").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("settings.json is invalid") && err.ends_with("delete it to start from the defaults"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn testing_an_unreachable_endpoint_says_what_to_check() {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = test_connection(dir.path(), "sub", &endpoint(&format!("http://127.0.0.1:{port}/v1"), "m"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("check the URL, the model name and the key"), "{err}");
        let err = test_connection(dir.path(), "sub", &ModelSetting::default()).await.unwrap_err().to_string();
        assert!(err.starts_with("the sub model is local"), "{err}");
    }
}
