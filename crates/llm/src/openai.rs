//! The OpenAI-compatible HTTP client: Quarry's main [`LanguageModel`]. It streams server-sent
//! events, retries with backoff on 429 and 5xx (only before any text has streamed, so nothing is
//! ever delivered twice), limits concurrent requests per endpoint, and stops a request when its
//! sink says so by dropping the connection (which frees the server's slot).
//!
//! It speaks to `quarry serve`, llama.cpp's `llama-server`, vLLM, Ollama's `/v1`, and hosted
//! APIs. llama.cpp's extensions (`top_k`, `min_p`, `repeat_penalty`, `grammar`) are sent only
//! when [`OpenAiClient::with_extensions`] is on, since hosted APIs reject unknown fields.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::api::{
    CandidateScore, ChatMessage, ChatRequest, Completion, DeltaSink, FinishReason, LanguageModel, ScoreRequest, Scores,
    Timings, Usage,
};
use crate::{Error, Result};
use quarry_models::fetch::describe;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Long prompts on a CPU can take minutes before the first token; servers that start the stream
/// at once and send SSE keep-alives (ours does) never come near this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
const RETRIES: u32 = 3;

/// One semaphore per endpoint, shared by every client of that endpoint in this process.
fn endpoint_limit(base: &str, permits: usize) -> Arc<Semaphore> {
    static LIMITS: OnceLock<Mutex<HashMap<String, Arc<Semaphore>>>> = OnceLock::new();
    let mut map = LIMITS.get_or_init(Default::default).lock().unwrap();
    map.entry(base.to_string()).or_insert_with(|| Arc::new(Semaphore::new(permits.max(1)))).clone()
}

/// A model behind an OpenAI-compatible endpoint.
#[derive(Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    base: String,
    model: String,
    api_key: Option<String>,
    limit: Arc<Semaphore>,
    extensions: bool,
}

impl OpenAiClient {
    /// `base_url` is the API root, with or without the trailing `/v1`
    /// (`http://127.0.0.1:8080`, `https://api.example.com/v1`).
    pub fn new(base_url: &str, model: &str, api_key: Option<String>) -> Result<OpenAiClient> {
        let trimmed = base_url.trim_end_matches('/');
        let base = if trimmed.ends_with("/v1") { trimmed.to_string() } else { format!("{trimmed}/v1") };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(IDLE_TIMEOUT)
            .user_agent(concat!("quarry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Network { url: base.clone(), message: e.to_string() })?;
        Ok(OpenAiClient { http, limit: endpoint_limit(&base, 4), base, model: model.into(), api_key, extensions: true })
    }

    /// At most `n` requests in flight to this endpoint from this process.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.limit = Arc::new(Semaphore::new(n.max(1)));
        self
    }

    /// Whether to send llama.cpp's sampling and grammar fields (off for hosted APIs).
    pub fn with_extensions(mut self, on: bool) -> Self {
        self.extensions = on;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let s = &request.sampling;
        let mut body = json!({
            "model": self.model,
            "messages": request.messages,
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": s.seed,
        });
        if let Some(n) = request.max_tokens {
            body["max_tokens"] = json!(n);
        }
        if !request.stop.is_empty() {
            body["stop"] = json!(request.stop);
        }
        if let Some(schema) = &request.constraint.json_schema {
            body["response_format"] =
                json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}});
        }
        if self.extensions {
            body["top_k"] = json!(s.top_k);
            body["min_p"] = json!(s.min_p);
            body["repeat_penalty"] = json!(s.repeat_penalty);
            if let Some(g) = &request.constraint.grammar {
                body["grammar"] = json!(g);
            }
        }
        body
    }

    /// POSTs with retries on connection failures, 429 and 5xx, honouring `Retry-After`.
    async fn send(&self, url: &str, body: &Value) -> Result<reqwest::Response> {
        let mut attempt = 0;
        loop {
            let mut req = self.http.post(url).json(body);
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key);
            }
            let outcome = req.send().await;
            let retry_after = match &outcome {
                Ok(r) if r.status().is_success() => return Ok(outcome.expect("matched Ok")),
                Ok(r) if r.status() == 429 || r.status().is_server_error() => r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs),
                Ok(_) => None,
                Err(e) if e.is_connect() || e.is_timeout() => None,
                Err(_) => None,
            };
            let retryable = match &outcome {
                Ok(r) => r.status() == 429 || r.status().is_server_error(),
                Err(e) => e.is_connect() || e.is_timeout(),
            };
            if !retryable || attempt >= RETRIES {
                return Err(match outcome {
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        let message = serde_json::from_str::<Value>(&text)
                            .ok()
                            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                            .unwrap_or_else(|| text.chars().take(300).collect());
                        Error::Http { url: url.into(), status: status.as_u16(), message }
                    }
                    Err(e) => Error::Network { url: url.into(), message: describe(&e) },
                });
            }
            let backoff =
                Duration::from_millis(500 << attempt).max(retry_after.unwrap_or_default()).min(Duration::from_secs(30));
            tracing::debug!(url, attempt, ?backoff, "retrying");
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }

    /// llama-server's `/tokenize` (also served by `quarry serve`).
    pub async fn tokenize(&self, text: &str) -> Result<Vec<i32>> {
        let v = self.post_root("/tokenize", &json!({"model": self.model, "content": text})).await?;
        let tokens = v["tokens"].as_array().ok_or_else(|| self.malformed("/tokenize", "tokens"))?;
        Ok(tokens.iter().filter_map(|t| t.as_i64().map(|t| t as i32)).collect())
    }

    /// llama-server's `/apply-template` (also served by `quarry serve`): the prompt `messages`
    /// become through the model's chat template, the assistant's turn opened.
    pub async fn apply_template(&self, messages: &[ChatMessage]) -> Result<String> {
        let v = self.post_root("/apply-template", &json!({"model": self.model, "messages": messages})).await?;
        v["prompt"].as_str().map(str::to_string).ok_or_else(|| self.malformed("/apply-template", "prompt"))
    }

    /// POSTs to a route of the server root (llama-server's extensions live beside `/v1`).
    async fn post_root(&self, route: &str, body: &Value) -> Result<Value> {
        let url = format!("{}{route}", self.base.trim_end_matches("/v1"));
        let resp = self.send(&url, body).await?;
        resp.json().await.map_err(|e| Error::Network { url, message: describe(&e) })
    }

    fn malformed(&self, route: &str, field: &str) -> Error {
        let url = format!("{}{route}", self.base.trim_end_matches("/v1"));
        Error::Network { url, message: format!("the answer has no `{field}`") }
    }
}

#[async_trait::async_trait]
impl LanguageModel for OpenAiClient {
    fn name(&self) -> &str {
        &self.model
    }

    async fn score(&self, request: &ScoreRequest) -> Result<Scores> {
        score(self, request).await
    }

    async fn chat_stream(&self, request: &ChatRequest, sink: &mut dyn DeltaSink) -> Result<Completion> {
        let _permit = self.limit.acquire().await.map_err(|_| Error::Generation("the client was shut down".into()))?;
        let url = format!("{}/chat/completions", self.base);
        let started = Instant::now();
        let resp = self.send(&url, &self.body(request)).await?;
        let is_sse = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            // A server that ignores `stream` answers with one JSON object.
            let v: Value = resp.json().await.map_err(|e| Error::Network { url: url.clone(), message: describe(&e) })?;
            let text = v["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string();
            let ttft = started.elapsed().as_secs_f64() * 1e3;
            sink.delta(&text);
            return Ok(completion_from(&v, text, parse_finish(&v["choices"][0]["finish_reason"]), ttft, &self.model));
        }

        let mut stream = resp.bytes_stream();
        let mut buf = Vec::new();
        let mut text = String::new();
        let mut finish = FinishReason::Stop;
        let mut last = Value::Null;
        let mut ttft = None;
        let mut deltas = 0usize;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        'read: loop {
            let chunk = tokio::select! {
                c = stream.next() => c,
                _ = tick.tick() => {
                    if sink.cancelled() { finish = FinishReason::Cancelled; break 'read; }
                    continue;
                }
            };
            let Some(chunk) = chunk else { break };
            let chunk = chunk.map_err(|e| Error::Network { url: url.clone(), message: describe(&e) })?;
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let Some(data) = line.trim_end().strip_prefix("data:").map(str::trim) else { continue };
                if data == "[DONE]" {
                    break 'read;
                }
                let v: Value = serde_json::from_str(data)
                    .map_err(|e| Error::Network { url: url.clone(), message: format!("a malformed event ({e})") })?;
                if let Some(message) = v["error"]["message"].as_str() {
                    return Err(Error::Http { url: url.clone(), status: 200, message: message.into() });
                }
                let choice = &v["choices"][0];
                if let Some(delta) = choice["delta"]["content"].as_str().filter(|d| !d.is_empty()) {
                    ttft.get_or_insert_with(|| started.elapsed().as_secs_f64() * 1e3);
                    text.push_str(delta);
                    deltas += 1;
                    if !sink.delta(delta) || sink.cancelled() {
                        finish = FinishReason::Cancelled;
                        break 'read;
                    }
                }
                if !choice["finish_reason"].is_null() {
                    finish = parse_finish(&choice["finish_reason"]);
                }
                if !v["usage"].is_null() {
                    last = v;
                }
            }
        }
        let ttft = ttft.unwrap_or_else(|| started.elapsed().as_secs_f64() * 1e3);
        let stopped_early = last.is_null();
        let mut c = completion_from(&last, text, finish, ttft, &self.model);
        // A stream stopped by the caller never gets the usage event; servers send about one
        // token per delta, so the tokens generated still count against a run's budget.
        if stopped_early && c.usage.completion_tokens == 0 {
            c.usage.completion_tokens = deltas;
        }
        Ok(c)
    }
}

/// Quarry's `POST /v1/score` (see `quarry-engine`'s `serve`). A server without the route (404)
/// or that refuses its fields (400 from llama-server's unknown endpoint handling) is
/// [`Error::Unsupported`], so callers fall back to generating.
async fn score(client: &OpenAiClient, request: &ScoreRequest) -> Result<Scores> {
    let _permit = client.limit.acquire().await.map_err(|_| Error::Generation("the client was shut down".into()))?;
    let url = format!("{}/score", client.base);
    let body = json!({"model": client.model, "messages": request.messages, "candidates": request.candidates});
    let v: Value = match client.send(&url, &body).await {
        Ok(resp) => resp.json().await.map_err(|e| Error::Network { url: url.clone(), message: describe(&e) })?,
        Err(Error::Http { status: 404 | 405 | 501, .. }) => {
            return Err(Error::Unsupported(format!("{} does not score continuations (no {url})", client.model)))
        }
        Err(e) => return Err(e),
    };
    let malformed = || Error::Network { url: url.clone(), message: "the answer has no `scores`".into() };
    let scores = v["scores"].as_array().ok_or_else(malformed)?;
    if scores.len() != request.candidates.len() {
        return Err(Error::Network {
            url: url.clone(),
            message: format!("{} scores for {} candidates", scores.len(), request.candidates.len()),
        });
    }
    let candidates = scores
        .iter()
        .map(|s| {
            Some(CandidateScore {
                logprob: s["logprob"].as_f64()?,
                first_logprob: s["first_logprob"].as_f64()?,
                tokens: s["tokens"].as_u64()? as usize,
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(malformed)?;
    let c = completion_from(&v, String::new(), FinishReason::Stop, 0.0, &client.model);
    Ok(Scores { candidates, usage: c.usage, timings: c.timings, model: c.model })
}

fn parse_finish(v: &Value) -> FinishReason {
    match v.as_str() {
        Some("length") => FinishReason::Length,
        Some("cancelled") => FinishReason::Cancelled,
        _ => FinishReason::Stop,
    }
}

fn completion_from(v: &Value, text: String, finish: FinishReason, ttft_ms: f64, model: &str) -> Completion {
    let u = &v["usage"];
    let t = &v["timings"];
    let n = |x: &Value| x.as_u64().unwrap_or(0) as usize;
    Completion {
        text,
        finish_reason: finish,
        usage: Usage {
            prompt_tokens: n(&u["prompt_tokens"]),
            cached_tokens: n(&u["prompt_tokens_details"]["cached_tokens"]),
            completion_tokens: n(&u["completion_tokens"]),
        },
        timings: Timings {
            prompt_ms: t["prompt_ms"].as_f64().unwrap_or(0.0),
            generation_ms: t["predicted_ms"].as_f64().unwrap_or(0.0),
            ttft_ms,
        },
        model: v["model"].as_str().unwrap_or(model).to_string(),
    }
}
