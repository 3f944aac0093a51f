//! The one model protocol: requests, results and the [`LanguageModel`] trait, in the shape of
//! OpenAI's chat completions so the same code talks to Quarry's own engine, llama.cpp's
//! `llama-server`, vLLM, Ollama or a hosted API.

use serde::{Deserialize, Serialize};

use crate::Result;

/// One turn of a conversation, in the OpenAI shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage { role: "system".into(), content: content.into() }
    }
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage { role: "user".into(), content: content.into() }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage { role: "assistant".into(), content: content.into() }
    }
}

/// How to pick tokens. Temperature 0 means greedy decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: i32,
    pub min_p: f32,
    pub repeat_penalty: f32,
    pub seed: u32,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling { temperature: 0.0, top_p: 0.95, top_k: 40, min_p: 0.05, repeat_penalty: 1.0, seed: 42 }
    }
}

/// Output constraints. `grammar` is GBNF; `json_schema` is turned into a grammar by the engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    pub grammar: Option<String>,
    pub json_schema: Option<serde_json::Value>,
}

/// A chat completion request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<usize>,
    pub sampling: Sampling,
    pub stop: Vec<String>,
    pub constraint: Constraint,
}

impl ChatRequest {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        ChatRequest { messages, ..Default::default() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn, or a stop string appeared.
    Stop,
    /// `max_tokens` (or the context window) was reached.
    Length,
    /// The caller stopped it.
    Cancelled,
}

/// Token counts, with how much of the prompt came from the prompt cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub completion_tokens: usize,
}

impl Usage {
    pub fn total(&self) -> usize {
        self.prompt_tokens + self.completion_tokens
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.prompt_tokens += o.prompt_tokens;
        self.cached_tokens += o.cached_tokens;
        self.completion_tokens += o.completion_tokens;
    }
}

/// Where the time went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Evaluating the (uncached part of the) prompt.
    pub prompt_ms: f64,
    /// Generating the completion.
    pub generation_ms: f64,
    /// From the request to the first generated text, as the caller saw it.
    pub ttft_ms: f64,
}

/// A finished completion.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    pub timings: Timings,
    pub model: String,
}

/// How likely each of `candidates` is as the model's reply to `messages`: the prompt is rendered
/// with the assistant's turn opened and each candidate scored as its continuation. This is how
/// `llm_classify` labels items: a label read off the model's probabilities cannot be a label
/// outside the set, and costs one prompt evaluation instead of a generated reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreRequest {
    pub messages: Vec<ChatMessage>,
    pub candidates: Vec<String>,
}

/// One candidate's likelihood, in natural-log probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CandidateScore {
    /// Of the whole candidate: the sum over its tokens.
    pub logprob: f64,
    /// Of its first token alone (enough to rank candidates whose first tokens differ).
    pub first_logprob: f64,
    /// Its length in tokens.
    pub tokens: usize,
}

/// The scores of a [`ScoreRequest`], one per candidate in its order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub candidates: Vec<CandidateScore>,
    /// `completion_tokens` is 0: nothing is generated.
    pub usage: Usage,
    pub timings: Timings,
    pub model: String,
}

/// Receives a completion as it streams. Returning `false` from `delta` cancels the request (the
/// ripgrep sink shape); `cancelled` lets the caller stop it between deltas too, e.g. during a
/// long prompt evaluation.
pub trait DeltaSink: Send {
    fn delta(&mut self, text: &str) -> bool;
    fn cancelled(&self) -> bool {
        false
    }
}

/// A sink that discards deltas.
pub struct Discard;

impl DeltaSink for Discard {
    fn delta(&mut self, _: &str) -> bool {
        true
    }
}

/// A sink that collects deltas into a string.
impl DeltaSink for String {
    fn delta(&mut self, text: &str) -> bool {
        self.push_str(text);
        true
    }
}

/// Anything that completes chats: a local engine behind `quarry serve`, or any OpenAI-compatible
/// endpoint.
#[async_trait::async_trait]
pub trait LanguageModel: Send + Sync {
    /// The model's name as the endpoint knows it.
    fn name(&self) -> &str;

    /// Completes `request`, streaming text to `sink` as it is generated.
    async fn chat_stream(&self, request: &ChatRequest, sink: &mut dyn DeltaSink) -> Result<Completion>;

    /// Completes `request` without streaming.
    async fn chat(&self, request: &ChatRequest) -> Result<Completion> {
        self.chat_stream(request, &mut Discard).await
    }

    /// Scores continuations (see [`ScoreRequest`]). Endpoints that cannot (a hosted API, a plain
    /// llama-server) answer [`Error::Unsupported`](crate::Error::Unsupported), and callers fall
    /// back to generating.
    async fn score(&self, request: &ScoreRequest) -> Result<Scores> {
        let _ = request;
        Err(crate::Error::Unsupported(format!("{} does not score continuations", self.name())))
    }
}

/// Counting tokens and rendering chats the way the root model does: what fitting a prompt to a
/// window needs. [`crate::ServedTokenizer`] asks the engine serving the model (its `/tokenize`
/// and `/apply-template` routes), so no process but the engine loads a tokenizer.
#[async_trait::async_trait]
pub trait Tokens: Send + Sync {
    async fn count_tokens(&self, text: &str) -> Result<usize>;
    /// The prompt `messages` become, ending with the assistant's turn opened.
    async fn render_chat(&self, messages: &[ChatMessage]) -> Result<String>;
}
