//! The served engine against the real 0.5B model: streaming, batching, cancellation, grammars,
//! prompt caching and authentication, through the HTTP API and the OpenAI client.

use std::time::Duration;

use quarry_engine::engine::{Engine, EngineConfig, ModelSpec};
use quarry_llm::{ChatMessage, ChatRequest, Constraint, DeltaSink, Error, FinishReason, LanguageModel, OpenAiClient};
use quarry_models::ModelStore;
use serde_json::{json, Value};

pub const SMALL: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";

pub fn engine(slots: usize) -> Engine {
    let path = ModelStore::from_env().resolve(SMALL).unwrap_or_else(|e| panic!("{e} (`make test` fetches it first)"));
    Engine::start(EngineConfig {
        models: vec![ModelSpec { id: SMALL.into(), path }],
        slots,
        ctx_per_slot: 4096,
        ..EngineConfig::default()
    })
    .unwrap()
}

/// Serves `engine` on a free loopback port; returns the base URL.
pub async fn serve(engine: Engine, key: Option<&str>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = quarry_engine::serve::router(engine, key.map(str::to_string));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn ask(q: &str, max_tokens: usize) -> ChatRequest {
    let mut r = ChatRequest::new(vec![ChatMessage::user(q)]);
    r.max_tokens = Some(max_tokens);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_text_equals_the_non_streamed_text() {
    let base = serve(engine(2), None).await;
    let client = OpenAiClient::new(&base, SMALL, None).unwrap();
    let request = ask("Name three primary colours.", 40);
    let mut streamed = String::new();
    let a = client.chat_stream(&request, &mut streamed).await.unwrap();
    assert_eq!(streamed, a.text);

    let body = json!({"model": SMALL, "messages": [{"role": "user", "content": "Name three primary colours."}],
                      "max_tokens": 40, "temperature": 0.0, "seed": 42});
    let plain: Value = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plain["choices"][0]["message"]["content"].as_str().unwrap(), a.text);
    assert!(a.text.to_lowercase().contains("red"), "{}", a.text);
    assert_eq!(plain["usage"]["completion_tokens"].as_u64().unwrap() as usize, a.usage.completion_tokens);
    assert!(plain["timings"]["prompt_ms"].as_f64().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_concurrent_requests_complete_with_correct_usage() {
    let e = engine(4);
    let base = serve(e.clone(), None).await;
    let client = OpenAiClient::new(&base, SMALL, None).unwrap().with_concurrency(8);
    let questions = [
        "What is 2 + 2?",
        "What colour is the sky on a clear day?",
        "Name a fruit that is yellow.",
        "What is the opposite of hot?",
    ];
    let runs = questions.iter().map(|q| {
        let client = client.clone();
        async move { (q, client.chat(&ask(q, 24)).await.unwrap()) }
    });
    let results = futures_util::future::join_all(runs).await;
    for (q, c) in &results {
        assert!(!c.text.trim().is_empty(), "{q}: empty answer");
        // Usage agrees with the engine's own count of the rendered prompt.
        let prompt = e.render(None, vec![ChatMessage::user(**q)]).await.unwrap();
        let n = e.tokenize(None, prompt).await.unwrap().len();
        assert_eq!(c.usage.prompt_tokens, n, "{q}");
        assert!(c.usage.completion_tokens >= 1 && c.usage.completion_tokens <= 24, "{q}: {:?}", c.usage);
        if c.finish_reason == FinishReason::Length {
            assert_eq!(c.usage.completion_tokens, 24);
        }
    }
    let answers: Vec<&str> = results.iter().map(|(_, c)| c.text.as_str()).collect();
    assert!(answers[0].contains('4'), "{answers:?}");
    assert!(answers[1].to_lowercase().contains("blue"), "{answers:?}");
    assert!(answers[3].to_lowercase().contains("cold"), "{answers:?}");
}

struct StopAfterFirst(usize);
impl DeltaSink for StopAfterFirst {
    fn delta(&mut self, _: &str) -> bool {
        self.0 += 1;
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_frees_its_slot() {
    // One slot: if cancelling did not free it, the second request would wait forever.
    let base = serve(engine(1), None).await;
    let client = OpenAiClient::new(&base, SMALL, None).unwrap();
    let mut stop = StopAfterFirst(0);
    let c =
        client.chat_stream(&ask("Write a very long story about a lighthouse keeper.", 2000), &mut stop).await.unwrap();
    assert_eq!(c.finish_reason, FinishReason::Cancelled);
    assert_eq!(stop.0, 1);
    let next = tokio::time::timeout(Duration::from_secs(60), client.chat(&ask("Say OK.", 5))).await;
    assert!(next.expect("the slot was not freed").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grammar_and_json_schema_constrain_the_output() {
    let base = serve(engine(2), None).await;
    let client = OpenAiClient::new(&base, SMALL, None).unwrap();
    let mut r = ask("Is the Pacific an ocean? Answer in a full sentence.", 20);
    r.constraint = Constraint { grammar: Some(r#"root ::= ("yes" | "no") "." "#.into()), json_schema: None };
    let c = client.chat(&r).await.unwrap();
    assert!(c.text == "yes." || c.text == "no.", "{:?}", c.text);

    let mut r = ask("Give the name and age of a fictional person.", 80);
    r.constraint = Constraint {
        grammar: None,
        json_schema: Some(
            json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"], "additionalProperties": false}),
        ),
    };
    let c = client.chat(&r).await.unwrap();
    let v: Value = serde_json::from_str(&c.text).unwrap_or_else(|e| panic!("{e}: {:?}", c.text));
    assert!(v["name"].is_string() && v["age"].is_i64(), "{v}");

    // A broken grammar is the caller's error, in one sentence.
    let mut r = ask("hi", 5);
    r.constraint.grammar = Some("root ::= (".into());
    match client.chat(&r).await {
        Err(Error::Http { status: 400, message, .. }) => assert!(message.contains("grammar"), "{message}"),
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_long_prefix_comes_from_the_cache() {
    let base = serve(engine(2), None).await;
    let client = OpenAiClient::new(&base, SMALL, None).unwrap();
    let document = "The committee met on Tuesday to review the annual budget. ".repeat(60);
    let first = ChatRequest {
        max_tokens: Some(4),
        ..ChatRequest::new(vec![ChatMessage::system(document.clone()), ChatMessage::user("Summarise.")])
    };
    let a = client.chat(&first).await.unwrap();
    assert_eq!(a.usage.cached_tokens, 0);
    let second = ChatRequest {
        max_tokens: Some(4),
        ..ChatRequest::new(vec![ChatMessage::system(document), ChatMessage::user("When did they meet?")])
    };
    let b = client.chat(&second).await.unwrap();
    assert!(b.usage.prompt_tokens > 600);
    assert!(
        b.usage.cached_tokens + 20 >= b.usage.prompt_tokens,
        "only {} of {} cached",
        b.usage.cached_tokens,
        b.usage.prompt_tokens
    );
    assert!(b.timings.prompt_ms < a.timings.prompt_ms, "{:?} vs {:?}", b.timings, a.timings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_is_required_when_set() {
    let base = serve(engine(1), Some("s3cret")).await;
    let anonymous = OpenAiClient::new(&base, SMALL, None).unwrap();
    match anonymous.chat(&ask("hi", 3)).await {
        Err(Error::Http { status: 401, message, .. }) => assert_eq!(message, "invalid or missing API key"),
        other => panic!("expected 401, got {other:?}"),
    }
    let wrong = OpenAiClient::new(&base, SMALL, Some("guess".into())).unwrap();
    assert!(matches!(wrong.chat(&ask("hi", 3)).await, Err(Error::Http { status: 401, .. })));
    let keyed = OpenAiClient::new(&base, SMALL, Some("s3cret".into())).unwrap();
    assert!(keyed.chat(&ask("hi", 3)).await.is_ok());
    // Health stays open for supervisors and load balancers.
    assert!(reqwest::get(format!("{base}/health")).await.unwrap().status().is_success());
}

#[test]
fn a_corrupt_model_is_refused_with_a_clear_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.gguf");
    std::fs::write(&path, b"GGUF\x03\x00\x00\x00garbage").unwrap();
    let err =
        Engine::start(EngineConfig { models: vec![ModelSpec { id: "x".into(), path }], ..EngineConfig::default() })
            .err()
            .unwrap();
    assert!(err.to_string().contains("corrupt.gguf is not a usable GGUF model file"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_models_and_bad_requests_get_clear_errors() {
    let base = serve(engine(1), None).await;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/v1/chat/completions"))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = http
        .post(format!("{base}/v1/completions"))
        .json(&json!({"prompt": [999999999], "max_tokens": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("outside the vocabulary"), "{v}");
    let models: Value = http.get(format!("{base}/v1/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["data"][0]["id"], SMALL);
}
