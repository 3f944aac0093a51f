//! One door for every way of answering: [`Analyst::answer`] takes a folder, a question and a
//! [`Mode`] and returns an [`Answer`] of the same shape whichever mode ran, with its citations
//! verified. `quarry ask`, `quarry eval` and the desktop all come through here, so the baselines
//! and the loop are compared with the same models, window and answer budget.

use std::sync::Arc;
use std::time::Instant;

use quarry_index::Folder;
use quarry_llm::Tokens;
use quarry_llm::{ChatRequest, FinishReason, LanguageModel, Usage};
use serde::{Deserialize, Serialize};

use crate::budget::StopReason;
use crate::cite::{cite, cite_with_sources, Citation};
use crate::direct::DirectPrompt;
use crate::rag::{RagPrompt, PASSAGE_CHARS};
use crate::rlm::{Rlm, RlmConfig, Stream};
use crate::trajectory::{Event, Trajectory};
use crate::CancelToken;
use crate::Result;

/// How a question is answered.
///
/// [`Mode::Auto`] is the default of the CLI and the window alike, and this is the one place that
/// decides it: a folder that fits the root's window is answered in one pass (`direct` saw
/// everything, and is the fastest), and a larger one by the loop, which reads every file where
/// `direct` would see a part (a 40-file, 1.3 M-character folder of speeches: `direct` saw 2 of 40
/// files and answered wrongly after 214 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `Direct` when the whole folder fits the root model's window, `Rlm` otherwise.
    Auto,
    /// The Recursive Language Model loop.
    Rlm,
    /// The whole folder in the root model's window (cut to fit), one pass.
    Direct,
    /// The BM25-best passages in the root model's window, one pass.
    Rag,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Auto, Mode::Rlm, Mode::Direct, Mode::Rag];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Rlm => "rlm",
            Mode::Direct => "direct",
            Mode::Rag => "rag",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown mode '{s}'; the modes are {}", Mode::ALL.map(Mode::name).join(", ")))
    }
}

/// Settings shared by the modes.
#[derive(Debug, Clone)]
pub struct AnalystConfig {
    /// The root model's window in tokens: what direct and rag fill, and what a root turn may use.
    pub window: usize,
    /// Tokens the one-pass modes leave for the answer.
    pub answer_tokens: usize,
    pub passage_chars: usize,
    pub rlm: RlmConfig,
}

impl Default for AnalystConfig {
    fn default() -> Self {
        AnalystConfig { window: 8192, answer_tokens: 512, passage_chars: PASSAGE_CHARS, rlm: RlmConfig::default() }
    }
}

/// An answer and how it was reached, the same for every mode.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub mode: Mode,
    /// `None` only when the run was cancelled.
    pub answer: Option<String>,
    pub citations: Vec<Citation>,
    /// Root turns (1 for the one-pass modes).
    pub iterations: usize,
    pub sub_calls: usize,
    pub stop_reason: StopReason,
    pub seconds: f64,
    pub usage: Usage,
    /// What the user should know, e.g. that the folder did not fit the window.
    pub notices: Vec<String>,
    #[serde(skip)]
    pub trajectory: Option<Trajectory>,
}

impl Answer {
    /// The run ended with an answer the model chose to give, not one forced by a limit.
    pub fn format_ok(&self) -> bool {
        self.stop_reason == StopReason::Final && self.answer.as_deref().is_some_and(|a| !a.trim().is_empty())
    }
}

/// A root model, a sub model, the root's tokenizer and the settings.
pub struct Analyst {
    root: Arc<dyn LanguageModel>,
    sub: Arc<dyn LanguageModel>,
    tokens: Arc<dyn Tokens>,
    config: AnalystConfig,
}

impl Analyst {
    pub fn new(
        root: Arc<dyn LanguageModel>,
        sub: Arc<dyn LanguageModel>,
        tokens: Arc<dyn Tokens>,
        config: AnalystConfig,
    ) -> Analyst {
        Analyst { root, sub, tokens, config }
    }

    pub fn config(&self) -> &AnalystConfig {
        &self.config
    }

    /// Answers `question` about `folder` in `mode`. Events stream to `on_event` (model deltas
    /// for every mode; the loop's steps for `rlm`); `cancel` stops the run.
    pub async fn answer<F>(
        &self,
        folder: &Folder,
        question: &str,
        mode: Mode,
        cancel: CancelToken,
        mut on_event: F,
    ) -> Result<Answer>
    where
        F: FnMut(&Event) + Send,
    {
        let started = Instant::now();
        let c = &self.config;
        let mut direct = None;
        let mode = match mode {
            Mode::Auto => {
                // A window too small for even the one-pass prompt's frame holds no folder.
                let p = match DirectPrompt::build(&*self.tokens, folder, question, c.window, c.answer_tokens).await {
                    Ok(p) => Some(p),
                    Err(crate::Error::WindowTooSmall { .. }) => None,
                    Err(e) => return Err(e),
                };
                let chosen = if p.as_ref().is_some_and(|p| !p.is_truncated()) { Mode::Direct } else { Mode::Rlm };
                on_event(&Event::Notice {
                    message: if chosen == Mode::Direct {
                        format!("auto: the folder fits the {}-token window, so it is answered in one pass", c.window)
                    } else {
                        format!(
                            "auto: the folder is larger than the {}-token window, so the RLM loop reads it",
                            c.window
                        )
                    },
                });
                direct = p;
                chosen
            }
            m => m,
        };
        if mode == Mode::Rlm {
            let rlm = Rlm::new(self.root.clone(), self.sub.clone(), self.config.rlm.clone());
            let run = rlm.run(folder, question, cancel, on_event).await?;
            let citations =
                run.answer.as_deref().map(|a| cite_with_sources(a, folder, &run.sources)).unwrap_or_default();
            return Ok(Answer {
                mode,
                answer: run.answer,
                citations,
                iterations: run.iterations,
                sub_calls: run.sub_calls,
                stop_reason: run.stop_reason,
                seconds: run.seconds,
                usage: run.usage,
                notices: Vec::new(),
                trajectory: Some(run.trajectory),
            });
        }

        // What the model did not see, said in the answer itself (a warning line on stderr is
        // easy to miss, and a window answer copied elsewhere carries none).
        let mut partial = None;
        let (messages, notices) = if mode == Mode::Direct {
            let p = match direct {
                Some(p) => p,
                None => DirectPrompt::build(&*self.tokens, folder, question, c.window, c.answer_tokens).await?,
            };
            let mut notices = Vec::new();
            if p.is_truncated() {
                partial = Some(format!(
                    "(This answer saw {} of the folder's {} files: the rest did not fit the model's window. `--mode rlm` reads every file.)",
                    p.whole.len() + usize::from(p.cut.is_some()),
                    folder.documents().len()
                ));
                notices.push(format!(
                    "the folder does not fit in a {}-token window: the model sees {} of {} files{}",
                    c.window,
                    p.whole.len() + usize::from(p.cut.is_some()),
                    folder.documents().len(),
                    p.cut.as_ref().map(|f| format!(" ({f} cut short)")).unwrap_or_default()
                ));
            }
            (p.messages, notices)
        } else {
            let p =
                RagPrompt::build(&*self.tokens, folder, question, c.window, c.answer_tokens, c.passage_chars).await?;
            let notices =
                vec![format!("the model sees the {} best of {} matching passages", p.passages.len(), p.matched)];
            (p.messages, notices)
        };
        for n in &notices {
            on_event(&Event::Notice { message: n.clone() });
        }
        let request = ChatRequest { max_tokens: Some(c.answer_tokens), ..ChatRequest::new(messages) };
        let mut sink = Stream { on_event: &mut on_event, cancel: &cancel, guard: None };
        let completion = self.root.chat_stream(&request, &mut sink).await?;
        drop(sink);
        let stop_reason = match completion.finish_reason {
            FinishReason::Stop => StopReason::Final,
            FinishReason::Length => StopReason::MaxTokens,
            FinishReason::Cancelled => StopReason::Cancelled,
        };
        let answer = (stop_reason != StopReason::Cancelled).then(|| completion.text.trim().to_string());
        let citations = answer.as_deref().map(|a| cite(a, folder)).unwrap_or_default();
        let answer = answer.map(|a| match &partial {
            Some(note) => {
                // Streamed too, so a reader of the stream sees it where the answer ends.
                on_event(&Event::ModelDelta { text: format!("\n\n{note}") });
                format!("{a}\n\n{note}")
            }
            None => a,
        });
        Ok(Answer {
            mode,
            answer,
            citations,
            iterations: 1,
            sub_calls: 0,
            stop_reason,
            seconds: started.elapsed().as_secs_f64(),
            usage: completion.usage,
            notices,
            trajectory: None,
        })
    }
}
