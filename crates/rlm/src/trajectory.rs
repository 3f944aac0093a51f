//! What a run did, as live [`Event`]s (for the UI and the CLI) and as a [`Trajectory`] written
//! to JSONL afterwards (for evaluation and debugging), in the reference `rlms` logger's shape: a
//! metadata line, then one line per iteration with its code blocks and their results.

use std::io::Write;

use quarry_llm::Usage;
use quarry_repl::ReplResult;
use serde::{Deserialize, Serialize};

use crate::budget::{Budget, StopReason};
use crate::parse::CodeBlock;

/// One thing that happened during a run, in order. Tauri-free so the desktop forwards it as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        question: String,
        root_model: String,
        sub_model: String,
        context: String,
    },
    /// `index` counts from 1.
    IterationStarted {
        index: usize,
    },
    /// Text of the root model's reply as it streams.
    ModelDelta {
        text: String,
    },
    CodeBlock {
        iteration: usize,
        index: usize,
        code: String,
    },
    ReplResult {
        iteration: usize,
        index: usize,
        result: ReplResult,
    },
    SubCallStarted {
        id: usize,
        prompt_preview: String,
        prompt_chars: usize,
    },
    SubCallFinished {
        id: usize,
        ok: bool,
        response_preview: String,
        usage: Usage,
        seconds: f64,
    },
    /// The answer was found; `source` says how (see [`AnswerSource`]).
    Answer {
        text: String,
        source: AnswerSource,
    },
    /// Running totals after each root turn.
    Usage {
        root: Usage,
        sub: Usage,
    },
    Final {
        stop_reason: StopReason,
        iterations: usize,
        sub_calls: usize,
        seconds: f64,
    },
    /// Something the user should know about the run, e.g. that a baseline saw only part of the
    /// folder.
    Notice {
        message: String,
    },
    /// Something went wrong that the run survived (or the error that ended it).
    Error {
        message: String,
    },
}

/// Where a final answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerSource {
    /// `FINAL(...)` / `FINAL_VAR(...)` called in code.
    Code,
    /// `FINAL(...)` / `FINAL_VAR(...)` on its own line in the reply's prose.
    Prose,
    /// `answer = {"content": ..., "ready": True}` in the REPL.
    AnswerVariable,
    /// The last turn after a budget limit.
    Forced,
}

/// A code block and what running it produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockRun {
    #[serde(flatten)]
    pub block: CodeBlock,
    pub result: ReplResult,
    /// The code as the model first wrote it, when it did not compile and a repair round
    /// replaced it with `block`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repaired_from: Option<String>,
}

/// One root-model turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Iteration {
    pub index: usize,
    pub response: String,
    pub code_blocks: Vec<BlockRun>,
    pub final_answer: Option<String>,
    /// Why this turn's `FINAL` came before its evidence ([`crate::evidence::Premature::name`]);
    /// with the check on, such an answer was sent back and `final_answer` is `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub premature: Option<String>,
    pub usage: Usage,
    pub seconds: f64,
}

impl Trajectory {
    /// Turns whose `FINAL` came before its evidence and was sent back.
    pub fn sent_back(&self) -> usize {
        self.iterations.iter().filter(|i| i.premature.is_some() && i.final_answer.is_none()).count()
    }

    /// Why the answer the run ended with came before its evidence, if it did (with the check
    /// off, every premature answer; with it on, one given again after being sent back).
    pub fn premature_answer(&self) -> Option<&str> {
        self.iterations.last().filter(|i| i.final_answer.is_some()).and_then(|i| i.premature.as_deref())
    }
}

/// The run's description, the first JSONL line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub question: String,
    pub root_model: String,
    pub sub_model: String,
    pub budget: Budget,
    pub context: String,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    pub metadata: Metadata,
    pub iterations: Vec<Iteration>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    Metadata(&'a Metadata),
    Iteration(&'a Iteration),
}

impl Trajectory {
    /// Writes the JSONL form: `{"type":"metadata",...}` then one `{"type":"iteration",...}` per
    /// turn.
    pub fn write_jsonl(&self, mut out: impl Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut out, &Line::Metadata(&self.metadata))?;
        out.write_all(b"\n")?;
        for it in &self.iterations {
            serde_json::to_writer(&mut out, &Line::Iteration(it))?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}

/// The first `n` characters, with an ellipsis when cut: sub-call prompts can be 100k characters
/// and an event stream is for watching, not archiving.
pub fn preview(s: &str, n: usize) -> String {
    let mut it = s.char_indices();
    match it.nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_snake_case() {
        let e = Event::IterationStarted { index: 1 };
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"type":"iteration_started","index":1}"#);
        let e = Event::SubCallStarted { id: 0, prompt_preview: "x".into(), prompt_chars: 1 };
        assert!(serde_json::to_string(&e).unwrap().starts_with(r#"{"type":"sub_call_started""#));
        let e = Event::Answer { text: "a".into(), source: AnswerSource::AnswerVariable };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, r#"{"type":"answer","text":"a","source":"answer_variable"}"#);
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
    }

    #[test]
    fn jsonl_has_a_metadata_line_then_one_line_per_iteration() {
        let t = Trajectory {
            metadata: Metadata {
                question: "q".into(),
                root_model: "r".into(),
                sub_model: "s".into(),
                budget: Budget::default(),
                context: "c".into(),
            },
            iterations: (1..=2)
                .map(|index| Iteration {
                    index,
                    response: "```repl\nx\n```".into(),
                    code_blocks: vec![BlockRun {
                        repaired_from: None,
                        block: CodeBlock { lang: "repl".into(), code: "x".into() },
                        result: ReplResult { stdout: "1".into(), ..Default::default() },
                    }],
                    final_answer: None,
                    premature: None,
                    usage: Usage::default(),
                    seconds: 0.5,
                })
                .collect(),
        };
        let mut out = Vec::new();
        t.write_jsonl(&mut out).unwrap();
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["type"], "metadata");
        assert_eq!(lines[0]["budget"]["max_iterations"], 12);
        assert_eq!(lines[2]["type"], "iteration");
        assert_eq!(lines[2]["index"], 2);
        assert_eq!(lines[2]["code_blocks"][0]["code"], "x");
        assert_eq!(lines[2]["code_blocks"][0]["result"]["stdout"], "1");
    }

    #[test]
    fn preview_cuts_on_characters() {
        assert_eq!(preview("héllo", 2), "hé…");
        assert_eq!(preview("hi", 2), "hi");
    }
}
