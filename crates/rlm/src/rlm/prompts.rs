//! The sentences the loop writes to the root model, from `assets/prompts/loop.toml`, where
//! every one of them can be read and reviewed in one place beside the system prompt.

use std::sync::LazyLock;

use serde::Deserialize;

/// The root model's instructions, with a worked example sized for small coder models.
pub const SYSTEM_PROMPT: &str = include_str!("../../../../assets/prompts/rlm.md");

const LOOP_TOML: &str = include_str!("../../../../assets/prompts/loop.toml");

/// One field per sentence of `loop.toml`; a sentence missing there, or one there that no field
/// takes, fails the `loop_toml_holds_every_sentence_and_no_other` test.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Sentences {
    pub first_turn: String,
    pub first_step: String,
    pub first_step_python: String,
    pub first_step_records: String,
    pub first_step_judge_records: String,
    pub sent_back: String,
    pub repeated_code: String,
    pub repeated_failure: String,
    pub answer_probe: String,
    pub final_beside_code: String,
    pub final_beside_failed_code: String,
    pub ran_the_same_code: String,
    pub no_code: String,
    pub comments_only: String,
    pub echoed_error: String,
    pub cut_before_code: String,
    pub cut_after_code: String,
    pub repaired: String,
    pub output_of: String,
    pub no_output: String,
    pub found_nothing: String,
    pub absent_words: String,
    pub restarted: String,
    pub later_blocks: String,
    pub unterminated: String,
    pub final_not_counted: String,
    pub variables: String,
    pub next_step: String,
    pub repair_syntax_system: String,
    pub repair_error_system: String,
    pub repair_syntax: String,
    pub repair_error: String,
    pub forced_answer: String,
    pub cut_to_value: String,
}

/// The loop's sentences, parsed once.
pub(super) fn sentences() -> &'static Sentences {
    static SENTENCES: LazyLock<Sentences> =
        LazyLock::new(|| toml::from_str(LOOP_TOML).expect("assets/prompts/loop.toml parses (a unit test checks it)"));
    &SENTENCES
}

/// `template` with each `{name}` of `args` replaced by its value, in one pass, so a value that
/// holds braces (Python code, a dict) is never filled in again.
pub(super) fn fill(template: &str, args: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after
            .find('}')
            .and_then(|close| args.iter().find(|(name, _)| *name == &after[..close]).map(|(_, v)| (close, *v)));
        match value {
            Some((close, v)) => {
                out.push_str(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_toml_holds_every_sentence_and_no_other() {
        let s: Sentences = toml::from_str(LOOP_TOML).expect("loop.toml parses with every field, and no unknown one");
        assert!(s.first_turn.contains("{question}") && s.next_step.contains("{question}"));
        assert!(s.repair_error.contains("{code}") && s.repair_error.contains("{error}"));
    }

    #[test]
    fn fill_replaces_each_name_once_and_leaves_other_braces() {
        assert_eq!(fill("a {x} b {y}", &[("x", "1"), ("y", "{x}")]), "a 1 b {x}");
        assert_eq!(fill("d = {'k': 1} {x}", &[("x", "2")]), "d = {'k': 1} 2");
        assert_eq!(fill("{unknown} {", &[]), "{unknown} {");
    }
}
