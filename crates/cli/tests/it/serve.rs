//! `quarry serve` as a real process: the ready line, binding rules, API keys for a "remote"
//! endpoint, and supervision surviving a SIGKILL mid-request.

use crate::common::result_line;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use quarry_llm::{ChatMessage, ChatRequest, DeltaSink, Error, LanguageModel, LocalServer, OpenAiClient, ServerOptions};

const SMALL: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";

/// Starts `quarry serve` on a free port and returns it with the port from its ready line.
fn serve(extra: &[&str], env_key: Option<&str>) -> (Child, u16) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quarry"));
    cmd.args(["serve", "--model", SMALL, "--port", "0", "--slots", "2", "--ctx", "2048"]).args(extra);
    cmd.env_remove("QUARRY_API_KEY").env_remove("QUARRY_SGEMM_MIN_BATCH");
    if let Some(k) = env_key {
        cmd.env("QUARRY_API_KEY", k);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(v["event"], "ready");
    assert_eq!(v["models"][0], SMALL);
    (child, v["port"].as_u64().unwrap() as u16)
}

/// A folder whose answer is checkable: the storage room code is 7391.
fn memo_folder() -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("memo.txt"), "Facilities memo.\nThe storage room code is 7391.\n").unwrap();
    folder
}

/// `quarry ask --json` in `mode` about `folder`, with the 0.5B model as root and sub at `url`.
fn ask_remote(mode: &str, url: &str, folder: &tempfile::TempDir) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quarry"));
    cmd.env("QUARRY_DATA_DIR", crate::common::test_data_dir());
    cmd.args(["ask", "--mode", mode, "--folder", folder.path().to_str().unwrap()])
        .args(["--model", SMALL, "--sub-model", SMALL, "--root-url", url, "--sub-url", url, "--ctx", "2048", "--json"])
        .arg("What is the storage room code?");
    cmd
}

fn ask(q: &str, n: usize) -> ChatRequest {
    ChatRequest { max_tokens: Some(n), ..ChatRequest::new(vec![ChatMessage::user(q)]) }
}

#[test]
fn refuses_to_listen_beyond_loopback_without_a_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["serve", "--model", SMALL, "--host", "0.0.0.0"])
        .env_remove("QUARRY_API_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: refusing to listen on 0.0.0.0 without an API key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_works_as_a_remote_endpoint_with_its_key() {
    // The key travels by environment, as a supervisor passes it.
    let (mut child, port) = serve(&[], Some("remote-key"));
    let base = format!("http://127.0.0.1:{port}");
    let keyed = OpenAiClient::new(&base, SMALL, Some("remote-key".into())).unwrap();
    let c = keyed.chat(&ask("What is the capital of Italy? One word.", 8)).await.unwrap();
    assert!(c.text.contains("Rome"), "{}", c.text);
    let anonymous = OpenAiClient::new(&base, SMALL, None).unwrap();
    assert!(matches!(anonymous.chat(&ask("hi", 2)).await, Err(Error::Http { status: 401, .. })));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `quarry` is linked so that decode steps of a few tokens skip llamafile's tinyBLAS
/// (crates/llm/csrc/small_batch.c): two simultaneous requests make two-token steps, `/health`
/// counts the products sent to ggml's own kernels, and both answers are still right.
/// A streamed request's headers (and then keep-alives) come as soon as it is accepted, not with
/// its first token: a 32K-token prompt on a CPU took longer than the client's idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_starts_before_its_long_prompt_is_evaluated() {
    let (mut child, port) = serve(&["--threads", "1"], None);
    let prompt = quarry_engine::raw_bench::bench_tokens(1800, 7);
    let body = serde_json::json!({"prompt": prompt, "max_tokens": 2, "stream": true, "cache_prompt": false});
    let started = std::time::Instant::now();
    let mut resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let headers = started.elapsed();
    assert!(resp.status().is_success(), "{}", resp.status());
    let mut first_data = None;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        if first_data.is_none() && String::from_utf8_lossy(&chunk).contains("data:") {
            first_data = Some(started.elapsed());
        }
    }
    let first_data = first_data.expect("the stream carried data");
    assert!(headers * 4 < first_data, "headers after {headers:?}, first data after {first_data:?}");
    // An invalid request is still a plain HTTP error.
    let bad = serde_json::json!({"prompt": "x", "grammar": "root ::= (", "stream": true});
    let resp =
        reqwest::Client::new().post(format!("http://127.0.0.1:{port}/v1/completions")).json(&bad).send().await.unwrap();
    assert_eq!(resp.status(), 400, "{}", resp.text().await.unwrap());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrow_decode_batches_run_on_ggml_kernels_and_answer_correctly() {
    // The switch is on for one thread (`quarry_engine::kernels::configure`).
    let (mut child, port) = serve(&["--threads", "1"], None);
    let base = format!("http://127.0.0.1:{port}");
    let kernels = || async {
        let health: serde_json::Value = reqwest::get(format!("{base}/health")).await.unwrap().json().await.unwrap();
        health["kernels"].clone()
    };
    let before = kernels().await;
    assert_eq!(before["tinyblas_min_batch"], quarry_engine::kernels::ONE_THREAD_MIN_BATCH, "{before}");
    let client = OpenAiClient::new(&base, SMALL, None).unwrap();
    let italy = ask("What is the capital of Italy? One word.", 8);
    let france = ask("What is the capital of France? One word.", 8);
    let (a, b) = tokio::join!(client.chat(&italy), client.chat(&france));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.text.contains("Rome"), "{}", a.text);
    assert!(b.text.contains("Paris"), "{}", b.text);
    let after = kernels().await;
    assert!(
        after["small_batches"].as_i64().unwrap() > before["small_batches"].as_i64().unwrap(),
        "no narrow batch was kept from tinyBLAS: {before} -> {after}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Kills the server child (SIGKILL) as soon as the first text arrives.
struct KillOnFirstDelta(Option<u32>);
impl DeltaSink for KillOnFirstDelta {
    fn delta(&mut self, _: &str) -> bool {
        if let Some(pid) = self.0.take() {
            unsafe { libc_kill(pid as i32, 9) };
        }
        true
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_engine_is_a_clear_error_and_the_next_request_succeeds() {
    let mut options = ServerOptions::new(vec![SMALL.into()]);
    options.program = env!("CARGO_BIN_EXE_quarry").into();
    options.slots = 1;
    options.ctx_per_slot = 2048;
    let server = LocalServer::start(options).await.unwrap();
    let model = server.model(SMALL);
    let first_pid = server.pid().unwrap();

    let mut killer = KillOnFirstDelta(Some(first_pid));
    let err = model.chat_stream(&ask("Write a long essay about rivers.", 500), &mut killer).await.unwrap_err();
    assert!(matches!(err, Error::EngineCrashed { .. }), "{err:?}");
    assert!(err.to_string().starts_with("the local model server stopped unexpectedly"), "{err}");

    // The supervisor restarts the child; the next request waits for it and succeeds.
    let c = tokio::time::timeout(Duration::from_secs(120), model.chat(&ask("Say hello.", 5)))
        .await
        .expect("no restart")
        .unwrap();
    assert!(!c.text.is_empty());
    assert_eq!(server.restarts(), 1);
    assert_ne!(server.pid(), Some(first_pid));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_cannot_load_fails_the_start_with_the_childs_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("half.gguf");
    std::fs::write(&bad, b"GGUF\x03\x00\x00\x00").unwrap();
    let mut options = ServerOptions::new(vec![bad.display().to_string()]);
    options.program = env!("CARGO_BIN_EXE_quarry").into();
    let err = LocalServer::start(options).await.err().expect("must fail").to_string();
    assert!(err.starts_with("the local model server could not start"), "{err}");
    assert!(err.contains("half.gguf is not a usable GGUF model file"), "{err}");
}

#[test]
fn ask_uses_a_remote_endpoint_for_root_and_sub() {
    let (mut child, port) = serve(&[], Some("remote-key"));
    let url = format!("http://127.0.0.1:{port}/v1");
    let folder = memo_folder();
    let ask = |key: Option<&str>| {
        let mut cmd = ask_remote("rag", &url, &folder);
        cmd.env_remove("QUARRY_ENDPOINT_KEY");
        if let Some(k) = key {
            cmd.env("QUARRY_ENDPOINT_KEY", k);
        }
        cmd.output().unwrap()
    };
    let out = ask(Some("remote-key"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("Starting the local engine"), "no local engine for remote models: {err}");
    let v = result_line(&out.stdout);
    assert!(v["answer"].as_str().unwrap().contains("7391"), "{v}");
    let out = ask(None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Ctrl-C (SIGINT) while the root model is writing stops the run cleanly: the result line says
/// cancelled, the exit code is 130, and the history records it cancelled.
#[test]
fn ctrl_c_cancels_a_run_cleanly() {
    let (mut server, port) = serve(&[], None);
    let url = format!("http://127.0.0.1:{port}/v1");
    let folder = memo_folder();
    let mut ask = ask_remote("rlm", &url, &folder).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(ask.stdout.take().unwrap()).lines();
    // The first delta: the root model is generating.
    for line in lines.by_ref() {
        if line.unwrap().contains("\"type\":\"model_delta\"") {
            break;
        }
    }
    let pid = ask.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    // Reading to the end means the process closed stdout; bounded so a hang fails, not blocks.
    let mut status = None;
    for _ in 0..600 {
        if let Some(s) = ask.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = status.unwrap_or_else(|| {
        ask.kill().unwrap();
        panic!("quarry ask did not exit after Ctrl-C")
    });
    assert_eq!(status.code(), Some(130));
    let result: serde_json::Value = serde_json::from_str(rest.last().expect("a result line")).unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["stop_reason"], "cancelled", "{result}");
    // The history has it as cancelled, with the events up to the stop.
    let run = quarry_index::History::open_in(&crate::common::test_data_dir())
        .unwrap()
        .get(result["run_id"].as_i64().expect("the run was recorded"))
        .unwrap();
    assert_eq!(run.status, quarry_index::history::RunStatus::Cancelled);
    assert!(run.events.iter().any(|e| e["type"] == "model_delta"), "{:?}", run.events);
    server.kill().unwrap();
    server.wait().unwrap();
}
