//! Token counts and chat prompts from the engine that serves the model: `quarry serve` (and
//! llama.cpp's `llama-server`) answer `POST /tokenize` and `POST /apply-template`, so the process
//! that sizes prompts — the CLI, or the desktop window — never loads a tokenizer or llama.cpp.

use crate::api::{ChatMessage, Tokens};
use crate::openai::OpenAiClient;
use crate::Result;

/// [`Tokens`] through an engine's `/tokenize` and `/apply-template` routes.
#[derive(Clone)]
pub struct ServedTokenizer(OpenAiClient);

impl ServedTokenizer {
    /// The tokenizer of the model `client` talks to.
    pub fn new(client: OpenAiClient) -> ServedTokenizer {
        ServedTokenizer(client)
    }

    /// Whether the endpoint answers both routes (vLLM and hosted APIs do not, or not alike).
    pub async fn works(&self) -> bool {
        self.count_tokens("ok").await.is_ok() && self.render_chat(&[ChatMessage::user("ok")]).await.is_ok()
    }
}

#[async_trait::async_trait]
impl Tokens for ServedTokenizer {
    async fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.0.tokenize(text).await?.len())
    }

    async fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        self.0.apply_template(messages).await
    }
}

/// Token counts for a model whose tokenizer no endpoint offers: 3 characters a token over-counts
/// English and code for every tokenizer we ship, so prompts sized with it fit.
pub struct Estimate;

#[async_trait::async_trait]
impl Tokens for Estimate {
    async fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(text.chars().count().div_ceil(3))
    }

    async fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        // Role markers cost a few tokens each in every template.
        Ok(messages.iter().map(|m| format!("<|{}|>\n{}\n", m.role, m.content)).collect())
    }
}
