//! The direct baseline: put the folder in the window and ask once.

use quarry_index::Folder;
use quarry_llm::{ChatMessage, Tokens};

use crate::{Error, Result};

const SYSTEM: &str = include_str!("../../../assets/prompts/direct.md");

/// The marker left where a document was cut to fit the window, so the model (and the user
/// reading the prompt) knows text is missing rather than absent.
const CUT: &str = "\n[... the rest of this file did not fit in the model's window ...]\n";

/// A prompt holding as much of the folder as fits, and an account of what did not.
#[derive(Debug, Clone)]
pub struct DirectPrompt {
    pub messages: Vec<ChatMessage>,
    /// Files given to the model whole.
    pub whole: Vec<String>,
    /// The file cut short to fill the window, if any.
    pub cut: Option<String>,
    /// Files left out entirely.
    pub omitted: Vec<String>,
    /// Tokens of the rendered prompt.
    pub prompt_tokens: usize,
}

impl DirectPrompt {
    /// Fits `folder` and `question` into `window` tokens, leaving `answer_tokens` for the reply.
    /// Files go in path order; the first that does not fit is cut, the rest are listed as omitted.
    pub async fn build(
        model: &dyn Tokens,
        folder: &Folder,
        question: &str,
        window: usize,
        answer_tokens: usize,
    ) -> Result<DirectPrompt> {
        let question = question.trim();
        let budget = room_for_body(model, SYSTEM, question, window, answer_tokens).await?;

        let mut docs = String::new();
        let mut used = 0usize;
        let (mut whole, mut cut, mut omitted) = (Vec::new(), None, Vec::new());
        for doc in folder.documents() {
            if cut.is_some() || used >= budget {
                omitted.push(doc.path.clone());
                continue;
            }
            let whole_block = block(&doc.path, &doc.text);
            let tokens = model.count_tokens(&whole_block).await?;
            if used + tokens <= budget {
                docs.push_str(&whole_block);
                used += tokens;
                whole.push(doc.path.clone());
                continue;
            }
            // Cut this file to the room left: estimate from its own chars-per-token, then shrink
            // until the tokenizer agrees.
            let room = budget - used;
            let ratio = doc.text.len() as f64 / tokens.max(1) as f64;
            let mut keep = ((room as f64) * ratio * 0.95) as usize;
            loop {
                let end = floor_boundary(&doc.text, keep);
                let partial = block(&doc.path, &format!("{}{CUT}", &doc.text[..end]));
                let t = model.count_tokens(&partial).await?;
                if t <= room || end == 0 {
                    if end > 0 {
                        docs.push_str(&partial);
                        used += t;
                        cut = Some(doc.path.clone());
                    } else {
                        omitted.push(doc.path.clone());
                    }
                    break;
                }
                keep = (end as f64 * 0.9) as usize;
            }
            if cut.is_none() && !omitted.contains(&doc.path) {
                omitted.push(doc.path.clone());
            }
        }
        let messages = one_pass(SYSTEM, &docs, question);
        let prompt_tokens = model.count_tokens(&model.render_chat(&messages).await?).await?;
        Ok(DirectPrompt { messages, whole, cut, omitted, prompt_tokens })
    }

    /// Whether the model sees less than the whole folder.
    pub fn is_truncated(&self) -> bool {
        self.cut.is_some() || !self.omitted.is_empty()
    }
}

/// A one-pass prompt: the system prompt, then `body` (documents or passages) and the question.
pub(crate) fn one_pass(system: &str, body: &str, question: &str) -> Vec<ChatMessage> {
    vec![ChatMessage::system(system.trim()), ChatMessage::user(format!("{body}\nQuestion: {question}"))]
}

/// Tokens left for the body of a one-pass prompt in `window`, after the rest of the prompt and
/// `answer_tokens` for the reply. The direct and rag baselines share it, so they get the same
/// budget.
pub(crate) async fn room_for_body(
    model: &dyn Tokens,
    system: &str,
    question: &str,
    window: usize,
    answer_tokens: usize,
) -> Result<usize> {
    if question.trim().is_empty() {
        return Err(Error::EmptyQuestion);
    }
    let overhead = model.count_tokens(&model.render_chat(&one_pass(system, "", question)).await?).await?;
    window
        .checked_sub(overhead + answer_tokens)
        .filter(|b| *b > 0)
        .ok_or(Error::WindowTooSmall { window, answer: answer_tokens })
}

fn block(path: &str, text: &str) -> String {
    format!("<document path=\"{path}\">\n{}\n</document>\n", text.trim_end())
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
