//! The OpenAI-compatible client against a scripted endpoint: retries on 429/5xx (and not on
//! other errors), the per-endpoint concurrency limit, and the tokens of a stream stopped early.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use quarry_llm::{ChatMessage, ChatRequest, Error, LanguageModel, OpenAiClient};
use serde_json::json;

#[derive(Default)]
struct Endpoint {
    /// Answer this status to the first `failures` requests.
    failures: usize,
    status: u16,
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// How long each successful answer takes.
    delay_ms: u64,
}

async fn chat(State(e): State<Arc<Endpoint>>) -> Response {
    let n = e.requests.fetch_add(1, Ordering::SeqCst);
    if n < e.failures {
        let mut r =
            (StatusCode::from_u16(e.status).unwrap(), Json(json!({"error": {"message": "busy"}}))).into_response();
        r.headers_mut().insert("retry-after", "0".parse().unwrap());
        return r;
    }
    let now = e.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    e.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(e.delay_ms)).await;
    e.in_flight.fetch_sub(1, Ordering::SeqCst);
    Json(json!({
        "choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }))
    .into_response()
}

async fn start(e: Endpoint) -> (String, Arc<Endpoint>) {
    let e = Arc::new(e);
    let app = Router::new().route("/v1/chat/completions", post(chat)).with_state(e.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, e)
}

fn hello() -> ChatRequest {
    ChatRequest::new(vec![ChatMessage::user("hi")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_answers_are_retried_until_one_succeeds() {
    for status in [429, 503] {
        let (base, e) = start(Endpoint { failures: 2, status, ..Default::default() }).await;
        let client = OpenAiClient::new(&base, "m", None).unwrap();
        let c = client.chat(&hello()).await.unwrap();
        assert_eq!(c.text, "ok");
        assert_eq!(c.usage.prompt_tokens, 3);
        assert_eq!(e.requests.load(Ordering::SeqCst), 3, "two refusals, then the answer ({status})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_error_is_not_retried() {
    let (base, e) = start(Endpoint { failures: 1, status: 400, ..Default::default() }).await;
    let client = OpenAiClient::new(&base, "m", None).unwrap();
    match client.chat(&hello()).await {
        Err(Error::Http { status: 400, message, .. }) => assert_eq!(message, "busy"),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_than_the_limit_are_in_flight_at_once() {
    let (base, e) = start(Endpoint { delay_ms: 150, ..Default::default() }).await;
    let client = Arc::new(OpenAiClient::new(&base, "m", None).unwrap().with_concurrency(2));
    let calls = (0..6).map(|_| {
        let c = client.clone();
        tokio::spawn(async move { c.chat(&hello()).await })
    });
    for call in calls.collect::<Vec<_>>() {
        assert_eq!(call.await.unwrap().unwrap().text, "ok");
    }
    assert_eq!(e.requests.load(Ordering::SeqCst), 6);
    assert_eq!(e.max_in_flight.load(Ordering::SeqCst), 2);
}

/// Five streamed deltas, then the usage event a caller that stops early never reads.
async fn five_deltas() -> Response {
    let mut body = String::new();
    for piece in ["a", "b", "c", "d", "e"] {
        body.push_str(&format!("data: {}\n\n", json!({"choices": [{"delta": {"content": piece}}]})));
    }
    body.push_str(&format!(
        "data: {}\n\ndata: [DONE]\n\n",
        json!({"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 5}})
    ));
    ([("content-type", "text/event-stream")], body).into_response()
}

/// Stops the stream at its third delta.
struct StopAtThird(usize);

impl quarry_llm::DeltaSink for StopAtThird {
    fn delta(&mut self, _: &str) -> bool {
        self.0 += 1;
        self.0 < 3
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_stopped_early_still_counts_the_tokens_it_generated() {
    let app = Router::new().route("/v1/chat/completions", post(five_deltas));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = OpenAiClient::new(&base, "m", None).unwrap();
    let c = client.chat_stream(&hello(), &mut StopAtThird(0)).await.unwrap();
    assert_eq!(c.text, "abc");
    assert_eq!(c.finish_reason, quarry_llm::FinishReason::Cancelled);
    assert_eq!(c.usage.completion_tokens, 3, "one token per delta received");
}
