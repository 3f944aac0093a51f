//! Scoring continuations (`POST /v1/score`, `Engine::score`) against the real 0.5B model: the
//! log-probabilities are the model's own (they obey the chain rule and rank the right answer
//! first), they do not depend on batching or the prompt cache, and bad requests get a sentence.

use quarry_engine::engine::{Prompt, ScoreRequest};
use quarry_llm::{ChatMessage, Error, LanguageModel, OpenAiClient, ScoreRequest as Scoring};
use serde_json::{json, Value};

use crate::engine::{engine, serve, SMALL};

fn capital(candidates: &[&str]) -> Scoring {
    Scoring {
        messages: vec![ChatMessage::user("What is the capital of France? Answer with one word.")],
        candidates: candidates.iter().map(|c| c.to_string()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_answer_scores_highest_and_one_token_candidates_are_their_first_token() {
    let client = OpenAiClient::new(&serve(engine(2), None).await, SMALL, None).unwrap();
    let s = client.score(&capital(&["London", "Paris", "Berlin"])).await.unwrap();
    assert_eq!(s.candidates.len(), 3);
    let lp: Vec<f64> = s.candidates.iter().map(|c| c.logprob).collect();
    assert!(lp[1] > lp[0] && lp[1] > lp[2], "{lp:?}");
    assert!(lp.iter().all(|&x| x < 0.0), "{lp:?}");
    // The greedy answer is "Paris": its probability is the largest of the vocabulary, so above 1/3.
    assert!(lp[1] > (1.0f64 / 3.0).ln(), "{lp:?}");
    for c in &s.candidates {
        assert_eq!(c.tokens, 1);
        assert_eq!(c.logprob, c.first_logprob);
    }
    assert_eq!(s.usage.completion_tokens, 0);
    assert!(s.usage.prompt_tokens > 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_candidate_is_the_sum_of_its_tokens_chain_rule() {
    let engine = engine(2);
    let score = |prompt: &str, candidates: &[&str]| {
        engine.score(ScoreRequest {
            model: None,
            prompt: Prompt::Text(prompt.into()),
            candidates: candidates.iter().map(|c| c.to_string()).collect(),
        })
    };
    let prompt = "The capital of France is";
    let whole = score(prompt, &[" Paris is a city"]).await.unwrap().candidates[0];
    assert_eq!(whole.tokens, 4);
    // log p(" Paris is a city") = log p(" Paris") + log p(" is a city" | " Paris"), ...
    let head = score(prompt, &[" Paris"]).await.unwrap().candidates[0];
    let tail = score(&format!("{prompt} Paris"), &[" is a city"]).await.unwrap().candidates[0];
    assert!((head.logprob - whole.first_logprob).abs() < 1e-3, "{head:?} {whole:?}");
    assert!((head.logprob + tail.logprob - whole.logprob).abs() < 2e-2, "{head:?} + {tail:?} != {whole:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_do_not_depend_on_batching_or_the_prompt_cache() {
    let base = serve(engine(4), None).await;
    let client = OpenAiClient::new(&base, SMALL, None).unwrap().with_concurrency(8);
    let request = |q: &str| Scoring {
        messages: vec![ChatMessage::user(format!(
            "Labels: city; person; number.\nWhich label fits the text best?\n\nText: {q}"
        ))],
        candidates: vec!["city".into(), "person".into(), "number".into(), "a longer made-up label".into()],
    };
    let texts = ["Paris", "Albert Einstein", "forty-two", "Tokyo", "Marie Curie", "seven", "Rome", "one hundred"];
    let alone: Vec<_> = {
        let mut v = Vec::new();
        for t in texts {
            v.push(client.score(&request(t)).await.unwrap());
        }
        v
    };
    // The second and later prompts share the instruction with the slot's cached one.
    assert!(alone[1].usage.cached_tokens > 10, "{:?}", alone[1].usage);
    let together = futures_util::future::join_all(texts.iter().map(|t| {
        let (client, r) = (client.clone(), request(t));
        async move { client.score(&r).await.unwrap() }
    }))
    .await;
    // Batched with others (or split differently by the cache), a prompt runs through other
    // matrix-kernel shapes, and llama.cpp is not batch-invariant: measured up to 0.37 nats apart,
    // most of it on the five-token candidate. A wrong position or a stale cache entry moves
    // scores by whole nats and changes which label wins.
    let mut worst = 0.0f64;
    for (a, b) in alone.iter().zip(&together) {
        for (x, y) in a.candidates.iter().zip(&b.candidates) {
            worst = worst.max((x.logprob - y.logprob).abs());
        }
    }
    assert!(worst < 1.0, "batched scores moved by {worst} nats");
    let best = |s: &quarry_llm::Scores| {
        (0..3).max_by(|&i, &j| s.candidates[i].logprob.total_cmp(&s.candidates[j].logprob)).unwrap()
    };
    let labels: Vec<usize> = together.iter().map(best).collect();
    assert_eq!(labels, alone.iter().map(best).collect::<Vec<_>>());
    assert_eq!(labels[0], 0, "Paris is a city");
    assert_eq!(labels[1], 1, "Einstein is a person");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_score_requests_get_one_sentence_and_servers_without_the_route_are_unsupported() {
    let base = serve(engine(1), None).await;
    let http = reqwest::Client::new();
    for (body, says) in [
        (json!({"messages": [{"role": "user", "content": "x"}], "candidates": []}), "candidates"),
        (json!({"messages": [{"role": "user", "content": "x"}], "prompt": "x", "candidates": ["a"]}), "not both"),
        (json!({"messages": [{"role": "user", "content": "x"}], "candidates": ["a", ""]}), "candidate 1 is empty"),
    ] {
        let r = http.post(format!("{base}/v1/score")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert!(v["error"]["message"].as_str().unwrap().contains(says), "{v}");
    }

    // A server without the route (a plain OpenAI-compatible endpoint): callers fall back.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, axum::Router::new()).await.unwrap() });
    let err = OpenAiClient::new(&bare, SMALL, None).unwrap().score(&capital(&["Paris"])).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
    assert!(err.to_string().contains("does not score"), "{err}");
}
