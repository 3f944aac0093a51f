//! `quarry serve`: the engine behind an OpenAI-compatible HTTP API.
//!
//! Routes: `POST /v1/chat/completions` and `POST /v1/completions` (streaming as server-sent
//! events, or not), `GET /v1/models`, `GET /health`, and llama-server's `POST /tokenize` and
//! `POST /apply-template`, and Quarry's own `POST /v1/score` (the log-probability of candidate
//! continuations, for classifying by likelihood). Every completion carries `usage` (with cached prompt tokens) and
//! `timings`. With an API key every route but `/health` wants `Authorization: Bearer <key>`.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::engine::{Engine, GenerateRequest, GenerationEvent, Prompt, ScoreRequest};
use crate::Error;
use quarry_llm::ChatMessage;
use quarry_llm::{Completion, Constraint, Sampling};

pub use quarry_llm::API_KEY_ENV;

#[derive(Clone)]
struct AppState {
    engine: Engine,
    api_key: Option<String>,
}

/// The HTTP routes over `engine`.
pub fn router(engine: Engine, api_key: Option<String>) -> Router {
    let state = AppState { engine, api_key };
    let protected = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/v1/score", post(score))
        .route("/tokenize", post(tokenize))
        .route("/apply-template", post(apply_template))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new().route("/health", get(health)).merge(protected).with_state(state)
}

/// Whether binding `host` keeps the server on this machine.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key {
        let given = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), key.as_bytes()) {
            return error(StatusCode::UNAUTHORIZED, "authentication_error", "invalid or missing API key");
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"message": message, "type": kind}}))).into_response()
}

fn engine_error(e: &Error) -> Response {
    let status = match e {
        Error::UnknownModel { .. } => StatusCode::NOT_FOUND,
        Error::PromptTooLong { .. } | Error::Template { .. } | Error::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let kind = if status == StatusCode::INTERNAL_SERVER_ERROR { "server_error" } else { "invalid_request_error" };
    error(status, kind, &e.to_string())
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "models": state.engine.models(),
        "threads": state.engine.threads(),
        "kernels": crate::kernels::stats(),
        "system": state.engine.system(),
    }))
}

async fn models(State(state): State<AppState>) -> Json<Value> {
    let data: Vec<Value> = state
        .engine
        .models()
        .iter()
        .map(|m| json!({"id": m.id, "object": "model", "owned_by": "quarry", "meta": {"n_ctx_slot": m.ctx_per_slot, "slots": m.slots, "n_ctx_train": m.n_ctx_train}}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// Message content is a string, or (newer clients) a list of typed parts.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Value>),
    Null(()),
}

#[derive(Deserialize)]
struct MessageIn {
    role: String,
    #[serde(default = "empty_content")]
    content: Content,
}

fn empty_content() -> Content {
    Content::Null(())
}

impl From<MessageIn> for ChatMessage {
    fn from(m: MessageIn) -> Self {
        let content = match m.content {
            Content::Text(t) => t,
            Content::Parts(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(""),
            Content::Null(()) => String::new(),
        };
        ChatMessage { role: m.role, content }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

/// The generation fields shared by both completion routes, with llama-server's extensions.
#[derive(Deserialize, Default)]
struct Knobs {
    model: Option<String>,
    #[serde(default)]
    stream: bool,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<i32>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    seed: Option<i64>,
    stop: Option<OneOrMany<String>>,
    grammar: Option<String>,
    json_schema: Option<Value>,
    response_format: Option<Value>,
    #[serde(default)]
    ignore_eos: bool,
    cache_prompt: Option<bool>,
}

impl Knobs {
    // A `Response` is the error: it goes back to the client as it is, once per request.
    #[allow(clippy::result_large_err)]
    fn request(self, prompt: Prompt) -> Result<(GenerateRequest, bool), Response> {
        let d = Sampling { temperature: 0.8, ..Sampling::default() };
        let json_schema = match (self.json_schema, &self.response_format) {
            (Some(s), _) => Some(s),
            (None, Some(rf)) => match rf["type"].as_str() {
                Some("json_schema") => Some(rf["json_schema"]["schema"].clone()).filter(|s| !s.is_null()),
                Some("json_object") => Some(json!({"type": "object"})),
                Some("text") | None => None,
                Some(other) => {
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        &format!("unsupported response_format type '{other}'"),
                    ))
                }
            },
            (None, None) => None,
        };
        let request = GenerateRequest {
            model: self.model,
            prompt,
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
            sampling: Sampling {
                temperature: self.temperature.unwrap_or(d.temperature),
                top_p: self.top_p.unwrap_or(d.top_p),
                top_k: self.top_k.unwrap_or(d.top_k),
                min_p: self.min_p.unwrap_or(d.min_p),
                repeat_penalty: self.repeat_penalty.unwrap_or(d.repeat_penalty),
                seed: self.seed.map(|s| s as u32).unwrap_or(d.seed),
            },
            stop: self.stop.map(OneOrMany::into_vec).unwrap_or_default(),
            constraint: Constraint { grammar: self.grammar, json_schema },
            ignore_eos: self.ignore_eos,
            cache_prompt: self.cache_prompt.unwrap_or(true),
        };
        Ok((request, self.stream))
    }
}

#[derive(Deserialize)]
struct ChatBody {
    messages: Vec<MessageIn>,
    #[serde(flatten)]
    knobs: Knobs,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PromptIn {
    Text(String),
    Tokens(Vec<i32>),
    Texts(Vec<String>),
}

#[derive(Deserialize)]
struct CompletionBody {
    prompt: PromptIn,
    #[serde(flatten)]
    knobs: Knobs,
}

/// Which response shape: chat completions carry `message`/`delta`, completions carry `text`.
#[derive(Clone, Copy)]
enum Shape {
    Chat,
    Text,
}

async fn chat_completions(
    State(state): State<AppState>,
    body: Result<Json<ChatBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request_error", &e.body_text()),
    };
    let messages = body.messages.into_iter().map(ChatMessage::from).collect();
    run(state, body.knobs, Prompt::Chat(messages), Shape::Chat).await
}

async fn completions(
    State(state): State<AppState>,
    body: Result<Json<CompletionBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request_error", &e.body_text()),
    };
    let prompt = match body.prompt {
        PromptIn::Text(t) => Prompt::Text(t),
        PromptIn::Tokens(t) => Prompt::Tokens(t),
        PromptIn::Texts(mut t) if t.len() == 1 => Prompt::Text(t.remove(0)),
        PromptIn::Texts(_) => {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", "send one prompt per request")
        }
    };
    run(state, body.knobs, prompt, Shape::Text).await
}

async fn run(state: AppState, knobs: Knobs, prompt: Prompt, shape: Shape) -> Response {
    let (request, stream) = match knobs.request(prompt) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let id = format!("quarry-{:x}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
    let created = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let model_name = request.model.clone().unwrap_or_else(|| state.engine.models()[0].id.clone());
    let mut rx = state.engine.generate(request);
    if !stream {
        let mut text = String::new();
        while let Some(event) = rx.recv().await {
            match event {
                GenerationEvent::Accepted => {}
                GenerationEvent::Text(t) => text.push_str(&t),
                GenerationEvent::Done(c) => return Json(full_response(&id, created, shape, &c)).into_response(),
                GenerationEvent::Error(e) => return engine_error(&e),
            }
        }
        return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the engine dropped the request");
    }
    // An invalid request gets a plain HTTP error, so clients see a status; an accepted one gets
    // its stream at once, and keep-alives while its prompt is evaluated (before, the headers
    // waited for the first token, and a 32K-token prompt outlasted the client's idle timeout).
    let first = match rx.recv().await {
        Some(GenerationEvent::Error(e)) => return engine_error(&e),
        Some(GenerationEvent::Accepted) => None,
        other => other,
    };
    let mut queue = std::collections::VecDeque::new();
    if let Shape::Chat = shape {
        queue.push_back(
            chunk(&id, created, &model_name, shape, Some(json!({"role": "assistant", "content": ""})), None)
                .to_string(),
        );
    }
    let events = stream::unfold((rx, first, queue, false), move |(mut rx, mut pending, mut queue, mut finished)| {
        let (id, model) = (id.clone(), model_name.clone());
        async move {
            loop {
                if let Some(data) = queue.pop_front() {
                    return Some((Ok::<_, Infallible>(SseEvent::default().data(data)), (rx, pending, queue, finished)));
                }
                if finished {
                    return None;
                }
                let event = match pending.take() {
                    Some(e) => Some(e),
                    None => rx.recv().await,
                };
                finished = true;
                match event {
                    Some(GenerationEvent::Accepted) => finished = false,
                    Some(GenerationEvent::Text(t)) => {
                        queue.push_back(
                            chunk(&id, created, &model, shape, Some(text_delta(shape, &t)), None).to_string(),
                        );
                        finished = false;
                    }
                    Some(GenerationEvent::Done(c)) => {
                        let mut last = chunk(&id, created, &model, shape, Some(json!({})), Some(&c));
                        last["usage"] = usage_json(&c.usage);
                        last["timings"] = timings_json(&c);
                        queue.push_back(last.to_string());
                        queue.push_back("[DONE]".into());
                    }
                    Some(GenerationEvent::Error(e)) => queue
                        .push_back(json!({"error": {"message": e.to_string(), "type": "server_error"}}).to_string()),
                    None => queue.push_back(
                        json!({"error": {"message": "the engine dropped the request", "type": "server_error"}})
                            .to_string(),
                    ),
                }
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

fn text_delta(shape: Shape, text: &str) -> Value {
    match shape {
        Shape::Chat => json!({"content": text}),
        Shape::Text => json!(text),
    }
}

fn chunk(id: &str, created: u64, model: &str, shape: Shape, delta: Option<Value>, done: Option<&Completion>) -> Value {
    let finish = done.map(|c| json!(c.finish_reason)).unwrap_or(Value::Null);
    match shape {
        Shape::Chat => json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta.unwrap_or(json!({})), "finish_reason": finish}],
        }),
        Shape::Text => json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": if done.is_some() { json!("") } else { delta.unwrap_or(json!("")) }, "finish_reason": finish}],
        }),
    }
}

fn usage_json(u: &quarry_llm::Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total(),
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    })
}

/// llama-server's names, so tools written for it read ours.
fn timings_json(c: &Completion) -> Value {
    json!({
        "prompt_n": c.usage.prompt_tokens - c.usage.cached_tokens,
        "prompt_ms": c.timings.prompt_ms,
        "cache_n": c.usage.cached_tokens,
        "predicted_n": c.usage.completion_tokens,
        "predicted_ms": c.timings.generation_ms,
        "ttft_ms": c.timings.ttft_ms,
    })
}

fn full_response(id: &str, created: u64, shape: Shape, c: &Completion) -> Value {
    let choice = match shape {
        Shape::Chat => {
            json!({"index": 0, "message": {"role": "assistant", "content": c.text}, "finish_reason": c.finish_reason})
        }
        Shape::Text => json!({"index": 0, "text": c.text, "finish_reason": c.finish_reason}),
    };
    json!({
        "id": id,
        "object": match shape { Shape::Chat => "chat.completion", Shape::Text => "text_completion" },
        "created": created,
        "model": c.model,
        "choices": [choice],
        "usage": usage_json(&c.usage),
        "timings": timings_json(c),
    })
}

/// `{"messages": [...]}` (rendered with the assistant's turn opened) or `{"prompt": "..."}` (raw
/// text), and the `candidates` to score as its continuation.
#[derive(Deserialize)]
struct ScoreBody {
    model: Option<String>,
    messages: Option<Vec<MessageIn>>,
    prompt: Option<String>,
    candidates: Vec<String>,
}

async fn score(
    State(state): State<AppState>,
    body: Result<Json<ScoreBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request_error", &e.body_text()),
    };
    let prompt = match (body.messages, body.prompt) {
        (Some(m), None) => Prompt::Chat(m.into_iter().map(ChatMessage::from).collect()),
        (None, Some(p)) => Prompt::Text(p),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "give either `messages` or `prompt`, not both",
            )
        }
    };
    let candidates = body.candidates.clone();
    match state.engine.score(ScoreRequest { model: body.model, prompt, candidates: body.candidates }).await {
        Ok(s) => {
            let scores: Vec<Value> = s
                .candidates
                .iter()
                .zip(&candidates)
                .enumerate()
                .map(|(i, (c, text))| {
                    json!({"index": i, "candidate": text, "logprob": c.logprob, "first_logprob": c.first_logprob, "tokens": c.tokens})
                })
                .collect();
            Json(json!({
                "object": "scores",
                "model": s.model,
                "scores": scores,
                "usage": usage_json(&s.usage),
                "timings": {"prompt_n": s.usage.prompt_tokens - s.usage.cached_tokens, "prompt_ms": s.timings.prompt_ms + s.timings.generation_ms,
                            "cache_n": s.usage.cached_tokens},
            }))
            .into_response()
        }
        Err(e) => engine_error(&e),
    }
}

#[derive(Deserialize)]
struct TokenizeBody {
    model: Option<String>,
    content: String,
}

async fn tokenize(State(state): State<AppState>, Json(body): Json<TokenizeBody>) -> Response {
    match state.engine.tokenize(body.model, body.content).await {
        Ok(tokens) => Json(json!({"tokens": tokens})).into_response(),
        Err(e) => engine_error(&e),
    }
}

#[derive(Deserialize)]
struct TemplateBody {
    model: Option<String>,
    messages: Vec<MessageIn>,
}

async fn apply_template(State(state): State<AppState>, Json(body): Json<TemplateBody>) -> Response {
    let messages = body.messages.into_iter().map(ChatMessage::from).collect();
    match state.engine.render(body.model, messages).await {
        Ok(prompt) => Json(json!({"prompt": prompt})).into_response(),
        Err(e) => engine_error(&e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_detection() {
        assert!(super::is_loopback("127.0.0.1"));
        assert!(super::is_loopback("::1"));
        assert!(super::is_loopback("localhost"));
        assert!(!super::is_loopback("0.0.0.0"));
        assert!(!super::is_loopback("192.168.1.5"));
    }

    #[test]
    fn api_keys_compare_exactly() {
        assert!(super::constant_time_eq(b"secret", b"secret"));
        assert!(!super::constant_time_eq(b"secret", b"secreT"));
        assert!(!super::constant_time_eq(b"secret", b"secret2"));
    }
}
