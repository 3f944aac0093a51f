//! The GBNF grammars root turns are held to, from `assets/prompts/grammars/`: the one
//! instruction a small model cannot ignore. Each says here why it exists; the rules themselves
//! are in the files, where a change can be reviewed with the prompts.

use crate::evidence::Premature;

/// A root turn under [`super::RlmConfig::root_grammar`]. Code lines cannot hold backticks, so
/// the block ends only at a fence on its own line; the grammar is then complete and the turn
/// ends.
pub const ROOT_GRAMMAR: &str = include_str!("../../../../assets/prompts/grammars/root.gbnf");

/// The turn after a reply with neither code nor an answer: one line of plan at most, then a
/// block whose code starts by its third line (the 1.5B model otherwise wrote "# No documents
/// yet" as its whole block, three turns running, and given room it repeats a comment forever).
/// The plan line is at most 200 characters: unbounded, the 1.5B echoed the loop's feedback as
/// one line, repeating its sentences, to the turn's 1,024-token limit (oolong-32k-000).
/// Its first line of code starts with a lower-case letter or `_`, as Python statements do and
/// an echoed `Traceback (most recent call last):` or `ValueError: ...` does not (see
/// `reply::echoes_error`).
pub const CODE_GRAMMAR: &str = include_str!("../../../../assets/prompts/grammars/code.gbnf");

/// The turn after an answer sent back because nothing judged items the question says carry no
/// label: a block whose first line of code (after a comment at most) calls a judging helper,
/// its arguments the model's own. Told in words to call `count_labels` with the question's
/// labels, the 1.5B answered the same unlabelled count again (para-oolong-8k-000: "116
/// questions fall under 'number'" twice, 0 sub-calls); the grammar leaves it the labels and the
/// counting to write, not the choice.
///
/// Up to three `import` lines may come first: without them the 1.5B, which wanted `import
/// json` first, glued it to the variable the grammar asked for (`importjsonl =
/// label_records(...)`, `importcollections = ...`) and then used the name it had meant (2 of 9
/// OOLONG runs at 8K, stop 26).
pub const JUDGE_GRAMMAR: &str = concat!(
    include_str!("../../../../assets/prompts/grammars/judge.gbnf"),
    include_str!("../../../../assets/prompts/grammars/judge-any.gbnf")
);

/// [`JUDGE_GRAMMAR`] for a folder of records: given the general one, the 1.5B labelled the two
/// files (`llm_classify(context, ["positive", "negative"])`) instead of their 516 records
/// (para-oolong-8k-002).
///
/// Its list holds two labels or more: the 1.5B otherwise passes only the label asked about
/// (`count_labels(["entity"])`, oolong-8k-000), which judges nothing. Where the question lists
/// its labels, [`judge_records_grammar`] writes that list in for the model.
pub const JUDGE_RECORDS_GRAMMAR: &str = concat!(
    include_str!("../../../../assets/prompts/grammars/judge.gbnf"),
    include_str!("../../../../assets/prompts/grammars/judge-records.gbnf")
);

/// The answer probe's reply under the grammar (see `Run::answer_probe`).
pub(super) const PROBE_GRAMMAR: &str = include_str!("../../../../assets/prompts/grammars/probe.gbnf");

/// Cutting a copied line to its value (see `Rlm::cut_to_value`).
pub(super) const CUT_GRAMMAR: &str = include_str!("../../../../assets/prompts/grammars/cut.gbnf");

/// The last "answer from what you have" turn under the grammar.
pub(super) const FINAL_GRAMMAR: &str = include_str!("../../../../assets/prompts/grammars/final.gbnf");

/// [`JUDGE_RECORDS_GRAMMAR`] with the question's own labels as the list, written out: left to
/// copy them, the 1.5B split "description and abstract concept" in two and wrote "entity" twice
/// (stop 23), so every record was judged against a set the question does not have.
pub fn judge_records_grammar(labels: &[String]) -> String {
    if labels.len() < 2 {
        return JUDGE_RECORDS_GRAMMAR.to_string();
    }
    let list = labels.iter().map(|l| serde_json::to_string(l).expect("strings serialize")).collect::<Vec<_>>();
    let literal = serde_json::to_string(&format!("[{}]", list.join(", "))).expect("strings serialize");
    format!(
        "{}call ::= (\"count_labels(\" | \"label_records(\") {literal}\n",
        include_str!("../../../../assets/prompts/grammars/judge.gbnf")
    )
}

/// The grammar a run holds a judging turn to: the records one with the question's labels
/// written in, or the general one.
pub(super) fn judge_grammar_for(records: bool, labels: &[String]) -> String {
    if records {
        judge_records_grammar(labels)
    } else {
        JUDGE_GRAMMAR.to_string()
    }
}

/// The grammar of the turn after an answer sent back for `p` (see [`CODE_GRAMMAR`],
/// [`JUDGE_GRAMMAR`]).
pub(super) fn grammar_after(p: Premature, records: bool, labels: &[String]) -> Option<String> {
    match p {
        Premature::NoCodeRan => Some(CODE_GRAMMAR.to_string()),
        Premature::NoJudgement => Some(judge_grammar_for(records, labels)),
        Premature::ExampleProse | Premature::Unchanged => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_judging_grammar_writes_the_question_s_labels_in() {
        let labels = vec!["description and abstract concept".to_string(), "entity".into(), "say \"hi\"".into()];
        let g = judge_records_grammar(&labels);
        assert!(
            g.contains(r#"("count_labels(" | "label_records(") "[\"description and abstract concept\", \"entity\", \"say \\\"hi\\\"\"]""#),
            "{g}"
        );
        assert!(!g.contains("label ::="), "no rule is left unused: {g}");
        assert_eq!(g.matches("call ::=").count(), 1, "{g}");
        assert_eq!(judge_records_grammar(&["one".into()]), JUDGE_RECORDS_GRAMMAR, "one label is no list");
        assert_eq!(judge_records_grammar(&[]), JUDGE_RECORDS_GRAMMAR);
    }

    #[test]
    fn every_grammar_defines_root_and_each_rule_it_uses() {
        let listed = judge_records_grammar(&["a".into(), "b".into()]);
        let quoted = regex::Regex::new(r#""(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]"#).unwrap();
        let name = regex::Regex::new(r"[a-z][a-z_]*").unwrap();
        for g in [
            ROOT_GRAMMAR,
            CODE_GRAMMAR,
            JUDGE_GRAMMAR,
            JUDGE_RECORDS_GRAMMAR,
            PROBE_GRAMMAR,
            CUT_GRAMMAR,
            FINAL_GRAMMAR,
            &listed,
        ] {
            let defined: Vec<&str> = g.lines().filter_map(|l| l.split_once(" ::= ").map(|(n, _)| n)).collect();
            assert_eq!(defined.first(), Some(&"root"), "{g}");
            // Rule names outside quoted strings and character classes.
            let bare = quoted.replace_all(g, " ");
            for word in name.find_iter(&bare) {
                assert!(defined.contains(&word.as_str()), "{} is used but not defined in\n{g}", word.as_str());
            }
        }
    }
}
