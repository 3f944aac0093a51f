//! The retrieval baseline: the folder's passages ranked by BM25 against the question, as many of
//! the best as fit the window, one pass. It is what the RLM loop must beat on questions that
//! need the whole folder, and what it should match on lookups.

use quarry_index::{passages, Bm25, Folder, Passage};
use quarry_llm::{ChatMessage, Tokens};

use crate::direct::{one_pass, room_for_body};
use crate::Result;

const SYSTEM: &str = include_str!("../../../assets/prompts/rag.md");

/// Characters per passage: about 500 tokens, so a 8K window holds a dozen.
pub const PASSAGE_CHARS: usize = 2000;

/// A prompt holding the best passages that fit.
#[derive(Debug, Clone)]
pub struct RagPrompt {
    pub messages: Vec<ChatMessage>,
    /// The passages given to the model, best first.
    pub passages: Vec<Passage>,
    /// Passages that matched the question at all.
    pub matched: usize,
    pub prompt_tokens: usize,
}

impl RagPrompt {
    /// Ranks `folder`'s passages against `question` and fills `window` tokens (less
    /// `answer_tokens` for the reply) with the best of them: the same prompt budget as the direct
    /// baseline, so the two compare like for like.
    pub async fn build(
        model: &dyn Tokens,
        folder: &Folder,
        question: &str,
        window: usize,
        answer_tokens: usize,
        passage_chars: usize,
    ) -> Result<RagPrompt> {
        let question = question.trim();
        let budget = room_for_body(model, SYSTEM, question, window, answer_tokens).await?;

        let index = Bm25::new(passages(folder.documents(), passage_chars));
        let ranked = index.search(question, usize::MAX);
        let matched = ranked.len();
        let mut body = String::new();
        let mut used = 0;
        let mut chosen = Vec::new();
        for (_, p) in ranked {
            if budget - used < 64 {
                break;
            }
            let block = format!(
                "<passage path=\"{}\" lines=\"{}-{}\">\n{}\n</passage>\n",
                p.path,
                p.line_start,
                p.line_end,
                p.text.trim_end()
            );
            let t = model.count_tokens(&block).await?;
            if used + t > budget {
                // Smaller passages further down may still fit; a passage is never cut.
                continue;
            }
            body.push_str(&block);
            used += t;
            chosen.push(p.clone());
        }
        let messages = one_pass(SYSTEM, &body, question);
        let prompt_tokens = model.count_tokens(&model.render_chat(&messages).await?).await?;
        Ok(RagPrompt { messages, passages: chosen, matched, prompt_tokens })
    }
}
