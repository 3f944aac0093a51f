//! The Models panel's commands: download a catalog model with live progress, pause it (the
//! partial file stays, and the next download resumes it with an HTTP range, after a restart
//! too), cancel it (the partial file goes), delete a model, and import a GGUF the person already
//! has. Downloads are the `quarry models fetch` code itself ([`Fetcher`]: sources in order,
//! resume, sha256), run on a blocking thread so hashing a gigabyte never stalls the window.
//! Each command is a plain function over a [`ModelStore`] so tests drive it against a local
//! server standing in for the Hub; the Tauri wrappers at the bottom add the channel and dialog.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

use quarry_models::catalog::unregister_local;
use quarry_models::{import, CancelToken, Error, Fetcher, ModelEntry, ModelStore, NoProgress, Progress};

use super::CommandError;

/// What a download reports while it runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DownloadEvent {
    /// Bytes of the model done so far, of `total`; `rate` and `eta_seconds` over this session.
    Progress { phase: Phase, done: u64, total: Option<u64>, bytes_per_second: f64, eta_seconds: Option<f64> },
    /// One line of news: a source tried, a download resumed, a fallback.
    Note { message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Download,
    /// Hashing (and, for the PyPI mirror, assembling) what was downloaded.
    Verify,
}

/// How a download ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DownloadOutcome {
    Installed {
        path: String,
        size_bytes: u64,
    },
    /// Paused: `partial_bytes` are kept for the next download (in this session or after a restart).
    Paused {
        partial_bytes: u64,
    },
    Cancelled,
}

/// The downloads in progress, by model id.
#[derive(Default)]
pub struct Downloads {
    running: Mutex<HashMap<String, Running>>,
}

struct Running {
    cancel: CancelToken,
    /// Set by cancel (not pause): the partial file is deleted when the download stops.
    discard: Arc<AtomicBool>,
}

impl Downloads {
    /// Stops the download of `id` keeping its partial file; false when none runs.
    pub fn pause(&self, id: &str) -> bool {
        match self.running.lock().expect("downloads lock").get(id) {
            Some(r) => {
                r.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Stops the download of `id` and deletes its partial file; a paused one (nothing running,
    /// a partial file on disk) is deleted at once.
    pub fn cancel(&self, store: &ModelStore, id: &str) -> Result<(), CommandError> {
        if let Some(r) = self.running.lock().expect("downloads lock").get(id) {
            r.discard.store(true, Ordering::SeqCst);
            r.cancel.cancel();
            return Ok(());
        }
        let entry = store.catalog()?.get(id)?.clone();
        discard_partial(store, &entry)
    }
}

/// Bytes of `entry` downloaded and kept for resuming, if any.
pub fn partial_bytes(store: &ModelStore, entry: &ModelEntry) -> Option<u64> {
    let dir = store.downloads_dir(entry);
    let total: u64 = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|f| f.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    (total > 0).then_some(total)
}

fn discard_partial(store: &ModelStore, entry: &ModelEntry) -> Result<(), CommandError> {
    let dir = store.downloads_dir(entry);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CommandError::new(format!(
            "the partial download in {} could not be deleted ({e}); delete that folder by hand",
            dir.display()
        ))),
    }
}

/// Downloads model `id` with `fetcher` (whose store is `store`), sending progress to `on_event`.
pub async fn download(
    store: &ModelStore,
    fetcher: Fetcher,
    downloads: &Downloads,
    id: &str,
    on_event: impl Fn(DownloadEvent) + Send + Sync + 'static,
) -> Result<DownloadOutcome, CommandError> {
    let entry = store.catalog()?.get(id)?.clone();
    let discard = Arc::new(AtomicBool::new(false));
    {
        let mut running = downloads.running.lock().expect("downloads lock");
        if running.contains_key(id) {
            return Err(CommandError::new(format!("{id} is already downloading; pause or cancel it first")));
        }
        running.insert(id.into(), Running { cancel: fetcher.cancel_token(), discard: discard.clone() });
    }
    let progress = WindowProgress::new(entry.size, on_event);
    let runtime = tokio::runtime::Handle::current();
    let job = entry.clone();
    // `fetch` hashes the file synchronously (a gigabyte takes seconds): a blocking thread keeps
    // that off the runtime's workers and the window's main thread.
    let result =
        tokio::task::spawn_blocking(move || runtime.block_on(async { fetcher.fetch(&job, &progress).await })).await;
    downloads.running.lock().expect("downloads lock").remove(id);
    let result = result.map_err(|e| {
        CommandError::new(format!("the download of {id} stopped unexpectedly ({e}); press Download again to resume it"))
    })?;
    match result {
        Ok(path) => {
            let size_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or_default();
            Ok(DownloadOutcome::Installed { path: path.display().to_string(), size_bytes })
        }
        Err(Error::Cancelled) if discard.load(Ordering::SeqCst) => {
            discard_partial(store, &entry)?;
            Ok(DownloadOutcome::Cancelled)
        }
        Err(Error::Cancelled) => {
            Ok(DownloadOutcome::Paused { partial_bytes: partial_bytes(store, &entry).unwrap_or(0) })
        }
        Err(e) => Err(download_failure(e)),
    }
}

/// A fetch error as the window says it: the library's sentence, with what to do in the window
/// (the library's own advice names CLI commands).
fn download_failure(e: Error) -> CommandError {
    let advice = match &e {
        Error::Network { .. } | Error::AllSourcesFailed { .. } => {
            "; check the network connection and press Download again (what was downloaded is kept)"
        }
        Error::NoSpace { .. } => "; free some space and press Download again",
        Error::Mismatch { .. } => "; press Download to fetch it again",
        Error::Io { .. } => "; check that the models folder is writable and press Download again",
        _ => "",
    };
    let text = e.to_string().replace("; run the command again to resume", "");
    CommandError::new(format!("{text}{advice}"))
}

/// Deletes model `id`: a downloaded file and any partial download go, and the bytes freed are
/// returned; an imported model is forgotten, and its file stays where the person keeps it.
pub fn delete(store: &ModelStore, downloads: &Downloads, id: &str) -> Result<u64, CommandError> {
    if downloads.running.lock().expect("downloads lock").contains_key(id) {
        return Err(CommandError::new(format!("{id} is downloading; cancel the download instead")));
    }
    let entry = store.catalog()?.get(id)?.clone();
    if entry.path.is_some() {
        unregister_local(store.dir(), id)?;
        return Ok(0);
    }
    discard_partial(store, &entry)?;
    let file = store.file_path(&entry);
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(size),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(CommandError::new(format!(
            "{} could not be deleted ({e}); check the models folder's permissions",
            file.display()
        ))),
    }
}

/// Imports the GGUF at `path` (checked, hashed and registered in place); its model id.
pub fn import_path(store: &ModelStore, path: &Path) -> Result<String, CommandError> {
    match import::import_file(store, path, &NoProgress, &CancelToken::default()) {
        Ok(entry) => Ok(entry.id),
        Err(e @ Error::BadGguf { .. }) => Err(CommandError::new(format!("{e}; choose a .gguf model file"))),
        Err(e) => Err(e.into()),
    }
}

/// Turns the fetcher's phases into whole-model progress: a resumed download starts at the bytes
/// it already had, so the bar never jumps back to zero.
struct WindowProgress<F> {
    size: Option<u64>,
    on_event: F,
    state: Mutex<PhaseState>,
}

struct PhaseState {
    phase: Phase,
    /// Bytes done before this phase began (a resumed partial file).
    base: u64,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_sent: Instant,
}

/// Progress events at most this often: enough for a smooth bar, few enough for the IPC.
const EVERY: Duration = Duration::from_millis(100);

impl<F: Fn(DownloadEvent) + Send + Sync> WindowProgress<F> {
    fn new(size: Option<u64>, on_event: F) -> WindowProgress<F> {
        let now = Instant::now();
        let state = PhaseState { phase: Phase::Download, base: 0, total: None, done: 0, started: now, last_sent: now };
        WindowProgress { size, on_event, state: Mutex::new(state) }
    }

    fn send(&self, s: &PhaseState) {
        let seconds = s.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 { s.done as f64 / seconds } else { 0.0 };
        let done = s.base + s.done;
        let total = s.total.map(|t| s.base + t);
        let eta_seconds = total.filter(|_| rate > 0.0).map(|t| t.saturating_sub(done) as f64 / rate);
        (self.on_event)(DownloadEvent::Progress { phase: s.phase, done, total, bytes_per_second: rate, eta_seconds });
    }
}

impl<F: Fn(DownloadEvent) + Send + Sync> Progress for WindowProgress<F> {
    fn begin(&self, label: &str, total: Option<u64>) {
        // The fetcher names its phases: "verifying …", "assembling and verifying …"; the rest
        // are downloads, whose total is what remains of the model.
        let phase = if label.starts_with("verifying") || label.starts_with("assembling") {
            Phase::Verify
        } else {
            Phase::Download
        };
        let base = match (phase, self.size, total) {
            (Phase::Download, Some(size), Some(remaining)) if remaining <= size => size - remaining,
            _ => 0,
        };
        let now = Instant::now();
        let mut s = self.state.lock().expect("progress lock");
        *s = PhaseState { phase, base, total, done: 0, started: now, last_sent: now };
        self.send(&s);
    }

    fn advance(&self, bytes: u64) {
        let mut s = self.state.lock().expect("progress lock");
        s.done += bytes;
        if s.last_sent.elapsed() >= EVERY {
            s.last_sent = Instant::now();
            self.send(&s);
        }
    }

    fn note(&self, message: &str) {
        (self.on_event)(DownloadEvent::Note { message: message.into() });
    }

    fn end(&self) {
        let s = self.state.lock().expect("progress lock");
        self.send(&s);
    }
}

/// Downloads a catalog model; progress goes to `on_event`, the outcome is the result.
#[tauri::command]
pub async fn download_model(
    downloads: State<'_, Arc<Downloads>>,
    id: String,
    on_event: Channel<DownloadEvent>,
) -> Result<DownloadOutcome, CommandError> {
    let store = ModelStore::from_env();
    let fetcher = Fetcher::new(store.clone())?;
    download(&store, fetcher, &downloads, &id, move |e| {
        // A closed window drops the channel; the download goes on to its end regardless.
        let _ = on_event.send(e);
    })
    .await
}

/// Pauses a download; its partial file is kept and the next download resumes it.
#[tauri::command]
pub fn pause_download(downloads: State<'_, Arc<Downloads>>, id: String) -> bool {
    downloads.pause(&id)
}

/// Cancels a download (running or paused) and deletes what it downloaded.
#[tauri::command]
pub fn cancel_download(downloads: State<'_, Arc<Downloads>>, id: String) -> Result<(), CommandError> {
    downloads.cancel(&ModelStore::from_env(), &id)
}

/// Deletes a model; the bytes freed.
#[tauri::command]
pub fn delete_model(downloads: State<'_, Arc<Downloads>>, id: String) -> Result<u64, CommandError> {
    delete(&ModelStore::from_env(), &downloads, &id)
}

/// "Import a GGUF": the native file dialog, then the import (hashing on a blocking thread); the
/// new model's id, or `None` when the dialog is cancelled.
#[tauri::command]
pub async fn import_model(app: tauri::AppHandle) -> Result<Option<String>, CommandError> {
    let (tx, rx) = tokio::sync::oneshot::channel::<Option<PathBuf>>();
    // GTK dialogs belong on the main thread.
    app.run_on_main_thread(move || {
        let picked =
            rfd::FileDialog::new().set_title("Import a GGUF model").add_filter("GGUF model", &["gguf"]).pick_file();
        let _ = tx.send(picked);
    })
    .map_err(|e| CommandError::new(format!("the file chooser could not open: {e}")))?;
    let Some(path) = rx.await.map_err(|_| CommandError::new("the file chooser closed unexpectedly"))? else {
        return Ok(None);
    };
    let store = ModelStore::from_env();
    tokio::task::spawn_blocking(move || import_path(&store, &path))
        .await
        .map_err(|e| CommandError::new(format!("the import stopped unexpectedly ({e}); try it again")))?
        .map(Some)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use quarry_models::catalog::{register_local, Role, Source};
    use quarry_models::fetch::sha256_file;

    use super::*;

    /// A stand-in for the Hub: serves `body` at `/org/tiny/resolve/main/tiny.gguf`, honours
    /// `Range: bytes=N-`, writes 64 KiB every `pace` so a download can be paused halfway, and
    /// logs `METHOD STATUS` per request.
    struct Hub {
        base: String,
        log: Arc<Mutex<Vec<String>>>,
    }

    fn hub(body: Vec<u8>, pace: Duration) -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        let body = Arc::new(body);
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(mut sock) = sock else { return };
                let (body, log) = (body.clone(), log2.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(sock.try_clone().unwrap());
                    let mut first = String::new();
                    let _ = reader.read_line(&mut first);
                    let mut range = None;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            if k.eq_ignore_ascii_case("range") {
                                range = v.trim().strip_prefix("bytes=").and_then(|r| r.strip_suffix('-')?.parse().ok());
                            }
                        }
                    }
                    let mut parts = first.split_whitespace();
                    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or(""));
                    if path != "/org/tiny/resolve/main/tiny.gguf" {
                        log.lock().unwrap().push(format!("{method} 404"));
                        let _ =
                            sock.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                        return;
                    }
                    let (status, from) = match range {
                        Some(from) if from <= body.len() => ("206 Partial Content", from),
                        _ => ("200 OK", 0),
                    };
                    log.lock().unwrap().push(format!("{method} {}", &status[..3]));
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\naccept-ranges: bytes\r\nconnection: close\r\n\r\n",
                        body.len() - from
                    );
                    if sock.write_all(head.as_bytes()).is_err() || method != "GET" {
                        return;
                    }
                    for chunk in body[from..].chunks(64 << 10) {
                        if sock.write_all(chunk).is_err() {
                            return;
                        }
                        std::thread::sleep(pace);
                    }
                });
            }
        });
        Hub { base, log }
    }

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// A store where `tiny` is a registered model served by the Hub stand-in, as the e2e test's is.
    fn store_with_tiny(dir: &Path, body: &[u8]) -> ModelStore {
        let file = dir.join("body.bin");
        std::fs::write(&file, body).unwrap();
        let sha = sha256_file(&file, &NoProgress, &CancelToken::default()).unwrap();
        std::fs::remove_file(&file).unwrap();
        let entry = ModelEntry {
            id: "tiny".into(),
            name: "Tiny test model".into(),
            family: String::new(),
            params: "1M".into(),
            quantization: "Q8_0".into(),
            file: "tiny.gguf".into(),
            size: Some(body.len() as u64),
            sha256: Some(sha),
            license: "MIT".into(),
            role: Role::Sub,
            default_for: vec![],
            sources: vec![Source::Huggingface { repo: "org/tiny".into(), file: "tiny.gguf".into() }],
            path: None,
        };
        register_local(dir, entry).unwrap();
        ModelStore::new(dir)
    }

    fn dead() -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    }

    fn fetcher(store: &ModelStore, hub: &str) -> Fetcher {
        Fetcher::with_endpoints(store.clone(), hub, &dead()).unwrap()
    }

    fn recorder() -> (Arc<Mutex<Vec<DownloadEvent>>>, impl Fn(DownloadEvent) + Send + Sync + 'static) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        (events, move |e| sink.lock().unwrap().push(e))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_download_streams_progress_to_done_and_installs_the_verified_file() {
        let body = bytes(3 << 20);
        let server = hub(body.clone(), Duration::from_millis(2));
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_tiny(dir.path(), &body);
        let (events, sink) = recorder();
        let outcome =
            download(&store, fetcher(&store, &server.base), &Downloads::default(), "tiny", sink).await.unwrap();
        assert_eq!(
            outcome,
            DownloadOutcome::Installed {
                path: dir.path().join("tiny.gguf").display().to_string(),
                size_bytes: body.len() as u64
            }
        );
        assert_eq!(std::fs::read(dir.path().join("tiny.gguf")).unwrap(), body);
        let events = events.lock().unwrap();
        let downloads: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                DownloadEvent::Progress { phase: Phase::Download, done, total, .. } => Some((*done, *total)),
                _ => None,
            })
            .collect();
        let size = body.len() as u64;
        assert_eq!(downloads.first(), Some(&(0, Some(size))), "{downloads:?}");
        assert_eq!(downloads.last(), Some(&(size, Some(size))), "{downloads:?}");
        assert!(downloads.windows(2).all(|w| w[0].0 <= w[1].0), "progress never goes back: {downloads:?}");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, DownloadEvent::Progress { phase: Phase::Verify, done, .. } if *done == size)),
            "the sha256 check is shown"
        );
        let info = super::super::app_info_for(&store).unwrap();
        let tiny = info.models.iter().find(|m| m.id == "tiny").unwrap();
        assert!(tiny.installed && tiny.partial_bytes.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_paused_download_keeps_its_part_and_resumes_with_a_range_after_a_restart() {
        let body = bytes(2 << 20);
        let server = hub(body.clone(), Duration::from_millis(20));
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_tiny(dir.path(), &body);
        let downloads = Arc::new(Downloads::default());
        let pauser = downloads.clone();
        let outcome = download(&store, fetcher(&store, &server.base), &downloads, "tiny", move |e| {
            // Pause once some bytes are in, as the Pause button does.
            if matches!(e, DownloadEvent::Progress { done, .. } if done > 0) {
                pauser.pause("tiny");
            }
        })
        .await
        .unwrap();
        let DownloadOutcome::Paused { partial_bytes: kept } = outcome.clone() else {
            panic!("not paused: {outcome:?}")
        };
        assert!(kept > 0 && kept < body.len() as u64, "{kept} bytes kept");
        assert!(!dir.path().join("tiny.gguf").exists());
        // After a restart the window learns of the paused download from app_info.
        let info = super::super::app_info_for(&store).unwrap();
        let tiny = info.models.iter().find(|m| m.id == "tiny").unwrap();
        assert_eq!((tiny.installed, tiny.partial_bytes), (false, Some(kept)));

        let restarted = Downloads::default();
        let (events, sink) = recorder();
        let outcome = download(&store, fetcher(&store, &server.base), &restarted, "tiny", sink).await.unwrap();
        assert!(matches!(outcome, DownloadOutcome::Installed { .. }), "{outcome:?}");
        assert_eq!(std::fs::read(dir.path().join("tiny.gguf")).unwrap(), body);
        let gets: Vec<_> = server.log.lock().unwrap().iter().filter(|l| l.starts_with("GET")).cloned().collect();
        assert_eq!(gets, vec!["GET 200".to_string(), "GET 206".to_string()], "the second download resumed");
        let first = events.lock().unwrap().iter().find_map(|e| match e {
            DownloadEvent::Progress { done, .. } => Some(*done),
            _ => None,
        });
        assert_eq!(first, Some(kept), "the bar starts where the pause left it");
        assert!(partial_bytes(&store, store.catalog().unwrap().get("tiny").unwrap()).is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelling_a_running_or_paused_download_deletes_its_partial_file() {
        let body = bytes(2 << 20);
        let server = hub(body.clone(), Duration::from_millis(20));
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_tiny(dir.path(), &body);
        let entry = store.catalog().unwrap().get("tiny").unwrap().clone();
        let downloads = Arc::new(Downloads::default());
        let canceller = downloads.clone();
        let store2 = store.clone();
        let outcome = download(&store, fetcher(&store, &server.base), &downloads, "tiny", move |e| {
            if matches!(e, DownloadEvent::Progress { done, .. } if done > 0) {
                canceller.cancel(&store2, "tiny").unwrap();
            }
        })
        .await
        .unwrap();
        assert_eq!(outcome, DownloadOutcome::Cancelled);
        assert!(!store.downloads_dir(&entry).exists());

        // A paused download, as found after a restart, is deleted at once.
        std::fs::create_dir_all(store.downloads_dir(&entry)).unwrap();
        std::fs::write(store.downloads_dir(&entry).join("tiny.gguf.part"), b"half").unwrap();
        assert_eq!(partial_bytes(&store, &entry), Some(4));
        Downloads::default().cancel(&store, "tiny").unwrap();
        assert!(!store.downloads_dir(&entry).exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_hub_is_one_sentence_saying_what_to_do() {
        let body = bytes(1000);
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_tiny(dir.path(), &body);
        let err = download(&store, fetcher(&store, &dead()), &Downloads::default(), "tiny", |_| {}).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("could not fetch tiny from any source"), "{msg}");
        assert!(msg.ends_with("press Download again (what was downloaded is kept)"), "{msg}");
        assert!(!msg.contains('\n'));
        let err = download(&store, fetcher(&store, &dead()), &Downloads::default(), "nope", |_| {}).await.unwrap_err();
        assert!(err.to_string().starts_with("unknown model 'nope'"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deleting_frees_a_downloaded_file_and_forgets_an_import_without_touching_it() {
        let body = bytes(100_000);
        let server = hub(body.clone(), Duration::ZERO);
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_tiny(dir.path(), &body);
        download(&store, fetcher(&store, &server.base), &Downloads::default(), "tiny", |_| {}).await.unwrap();
        assert_eq!(delete(&store, &Downloads::default(), "tiny").unwrap(), 100_000);
        assert!(!dir.path().join("tiny.gguf").exists());

        // An import of a file that is not a model is refused with what to do.
        let mine = tempfile::tempdir().unwrap();
        let notes = mine.path().join("notes.gguf");
        std::fs::write(&notes, b"my notes, not a model").unwrap();
        let msg = import_path(&store, &notes).unwrap_err().to_string();
        assert!(
            msg.contains("notes.gguf is not a usable GGUF model file") && msg.ends_with("choose a .gguf model file"),
            "{msg}"
        );

        // A registered file of the person's own: forgotten, never deleted.
        let own = mine.path().join("own.gguf");
        std::fs::write(&own, b"weights").unwrap();
        let mut entry = store.catalog().unwrap().get("tiny").unwrap().clone();
        entry.id = "own".into();
        entry.path = Some(own.clone());
        entry.sources = vec![];
        register_local(dir.path(), entry).unwrap();
        assert_eq!(delete(&store, &Downloads::default(), "own").unwrap(), 0);
        assert!(own.exists());
        assert!(store.catalog().unwrap().get("own").is_err());
    }
}
