//! The local engine against the real Qwen2.5-Coder 0.5B model (`make test` fetches it first).

use quarry_llm::local::{ChatMessage, FinishReason, GenerateOptions, LoadOptions, LocalModel, TokenSink};
use quarry_llm::ModelStore;

const SMALL: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";

fn small_model() -> LocalModel {
    let path = ModelStore::from_env()
        .resolve(SMALL)
        .unwrap_or_else(|e| panic!("{e} (`make test` fetches it before the tests run)"));
    LocalModel::load(&path, &LoadOptions::default()).unwrap()
}

fn greedy(max_tokens: usize) -> GenerateOptions {
    // The default sampling is greedy (temperature 0).
    GenerateOptions { max_tokens, ..GenerateOptions::default() }
}

#[test]
fn renders_the_gguf_chat_template_like_transformers() {
    let model = small_model();
    let prompt = model.render_chat(&[ChatMessage::system("Be brief."), ChatMessage::user("Hi")]).unwrap();
    assert_eq!(
        prompt,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    // The special tokens are parsed as single tokens, not spelled out.
    assert!(model.count_tokens("<|im_start|>user\nHi<|im_end|>") <= 6);
}

#[test]
fn answers_a_factual_question_and_streams_exactly_the_final_text() {
    let model = small_model();
    let messages = [ChatMessage::user("What is the capital of France? Answer with one word.")];
    let mut streamed = String::new();
    let generation = model.chat(&messages, &greedy(16), &mut streamed).unwrap();
    assert!(generation.text.contains("Paris"), "{:?}", generation.text);
    assert_eq!(streamed, generation.text);
    assert_eq!(generation.finish_reason, FinishReason::Stop);
    assert!(generation.prompt_tokens > 10 && generation.completion_tokens >= 1);

    // Greedy decoding is deterministic.
    let again = model.chat(&messages, &greedy(16), &mut String::new()).unwrap();
    assert_eq!(again.text, generation.text);
}

#[test]
fn max_tokens_and_stop_strings_end_the_generation() {
    let model = small_model();
    let messages = [ChatMessage::user("Count from 1 to 30, separated by commas.")];
    let g = model.chat(&messages, &greedy(5), &mut String::new()).unwrap();
    assert_eq!(g.finish_reason, FinishReason::Length);
    assert_eq!(g.completion_tokens, 5);

    let mut opts = greedy(100);
    opts.stop = vec!["5".into()];
    let mut streamed = String::new();
    let g = model.chat(&messages, &opts, &mut streamed).unwrap();
    assert_eq!(g.finish_reason, FinishReason::Stop);
    assert!(g.text.contains('4') && !g.text.contains('5'), "{:?}", g.text);
    assert_eq!(streamed, g.text);
}

#[test]
fn a_sink_returning_false_cancels() {
    struct StopAfter(usize);
    impl TokenSink for StopAfter {
        fn text(&mut self, _: &str) -> bool {
            self.0 -= 1;
            self.0 > 0
        }
    }
    let model = small_model();
    let g =
        model.chat(&[ChatMessage::user("Write a long poem about the sea.")], &greedy(200), &mut StopAfter(3)).unwrap();
    assert_eq!(g.finish_reason, FinishReason::Cancelled);
    assert!(g.completion_tokens < 20);
}

#[test]
fn a_file_that_is_not_a_model_gets_one_clear_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("download.gguf");
    std::fs::write(&fake, "<html><body>rate limited</body></html>").unwrap();
    let err = LocalModel::load(&fake, &LoadOptions::default()).err().expect("must fail").to_string();
    assert!(err.contains("download.gguf is not a usable GGUF model file"), "{err}");

    // A real model cut short is caught before llama.cpp reads past the end.
    let path = ModelStore::from_env().resolve(SMALL).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    let mut f = std::fs::File::create(&truncated).unwrap();
    std::io::copy(&mut std::io::Read::take(std::fs::File::open(path).unwrap(), 50_000_000), &mut f).unwrap();
    let err = LocalModel::load(&truncated, &LoadOptions::default()).err().expect("must fail").to_string();
    assert!(err.contains("truncated.gguf") && err.contains("truncated"), "{err}");
}

/// The tokenizer knows the context the model was trained for, as its GGUF header says (the
/// analyst caps a local root's window with it; llama.cpp's vocabulary-only load reports 0).
#[test]
fn the_tokenizer_knows_the_trained_context() {
    let path = ModelStore::from_env().resolve(SMALL).unwrap();
    let tokenizer = quarry_llm::local::Tokenizer::load(&path).unwrap();
    let header = quarry_llm::gguf::inspect(&path).unwrap().context_length().unwrap();
    assert_eq!(tokenizer.trained_context(), Some(header as usize));
    assert_eq!(header, 32_768);
}
