//! The 0.5B model through the engine as every caller reaches it (its HTTP API): the chat
//! template, the tokenizer, greedy answers, length and stop limits, cancellation, bad files.

use quarry_engine::engine::{Engine, EngineConfig, ModelSpec};
use quarry_llm::{
    ChatMessage, ChatRequest, DeltaSink, FinishReason, LanguageModel, OpenAiClient, ServedTokenizer, Tokens,
};
use quarry_models::ModelStore;

use crate::engine::{engine, serve, SMALL};

async fn client() -> OpenAiClient {
    OpenAiClient::new(&serve(engine(2), None).await, SMALL, None).unwrap()
}

fn greedy(messages: Vec<ChatMessage>, max_tokens: usize) -> ChatRequest {
    // The default sampling is greedy (temperature 0).
    ChatRequest { max_tokens: Some(max_tokens), ..ChatRequest::new(messages) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renders_the_gguf_chat_template_like_transformers() {
    let tokens = ServedTokenizer::new(client().await);
    let prompt = tokens.render_chat(&[ChatMessage::system("Be brief."), ChatMessage::user("Hi")]).await.unwrap();
    assert_eq!(
        prompt,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    // The special tokens are parsed as single tokens, not spelled out.
    assert!(tokens.count_tokens("<|im_start|>user\nHi<|im_end|>").await.unwrap() <= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_a_factual_question_and_streams_exactly_the_final_text() {
    let client = client().await;
    let request = greedy(vec![ChatMessage::user("What is the capital of France? Answer with one word.")], 16);
    let mut streamed = String::new();
    let c = client.chat_stream(&request, &mut streamed).await.unwrap();
    assert!(c.text.contains("Paris"), "{:?}", c.text);
    assert_eq!(streamed, c.text);
    assert_eq!(c.finish_reason, FinishReason::Stop);
    assert!(c.usage.prompt_tokens > 10 && c.usage.completion_tokens >= 1);

    // Greedy decoding is deterministic.
    let again = client.chat(&request).await.unwrap();
    assert_eq!(again.text, c.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tokens_and_stop_strings_end_the_generation() {
    let client = client().await;
    let count = || vec![ChatMessage::user("Count from 1 to 30, separated by commas.")];
    let c = client.chat(&greedy(count(), 5)).await.unwrap();
    assert_eq!(c.finish_reason, FinishReason::Length);
    assert_eq!(c.usage.completion_tokens, 5);

    let mut request = greedy(count(), 100);
    request.stop = vec!["5".into()];
    let mut streamed = String::new();
    let c = client.chat_stream(&request, &mut streamed).await.unwrap();
    assert_eq!(c.finish_reason, FinishReason::Stop);
    assert!(c.text.contains('4') && !c.text.contains('5'), "{:?}", c.text);
    assert_eq!(streamed, c.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_returning_false_cancels() {
    struct StopAfter(usize);
    impl DeltaSink for StopAfter {
        fn delta(&mut self, _: &str) -> bool {
            self.0 -= 1;
            self.0 > 0
        }
    }
    let client = client().await;
    let request = greedy(vec![ChatMessage::user("Write a long poem about the sea.")], 200);
    let c = client.chat_stream(&request, &mut StopAfter(3)).await.unwrap();
    assert_eq!(c.finish_reason, FinishReason::Cancelled);
    assert!(c.usage.completion_tokens < 20, "{:?}", c.usage);
}

#[test]
fn a_file_that_is_not_a_model_gets_one_clear_sentence() {
    let start = |path: std::path::PathBuf| {
        Engine::start(EngineConfig { models: vec![ModelSpec { id: "x".into(), path }], ..EngineConfig::default() })
            .err()
            .expect("must fail")
            .to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("download.gguf");
    std::fs::write(&fake, "<html><body>rate limited</body></html>").unwrap();
    let err = start(fake);
    assert!(err.contains("download.gguf is not a usable GGUF model file"), "{err}");

    // A real model cut short is caught before llama.cpp reads past the end.
    let path = ModelStore::from_env().resolve(SMALL).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    let mut f = std::fs::File::create(&truncated).unwrap();
    std::io::copy(&mut std::io::Read::take(std::fs::File::open(path).unwrap(), 50_000_000), &mut f).unwrap();
    let err = start(truncated);
    assert!(err.contains("truncated.gguf") && err.contains("truncated"), "{err}");
}

/// The engine reports the context the model was trained for, as its GGUF header says (the
/// analyst caps a local root's window with the header's figure).
#[test]
fn the_engine_knows_the_trained_context() {
    let path = ModelStore::from_env().resolve(SMALL).unwrap();
    let header = quarry_models::gguf::inspect(&path).unwrap().context_length().unwrap();
    assert_eq!(header, 32_768);
    assert_eq!(engine(1).models()[0].n_ctx_train as u64, header);
}
