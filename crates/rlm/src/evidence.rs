//! Whether a `FINAL` rests on evidence: the check the loop makes before it takes an answer.
//!
//! Small root models answer before doing the work. Seen with the 1.5B on records it had loaded
//! but not labelled: "There are 1003 'abbreviation' questions" for 1,003 rows, none of them
//! judged, and "con (1451 occurrences)" without one sub-call; and answers copied from the worked
//! examples' prose. Each check below reads only the question and the trajectory, never what kind
//! of task an evaluation suite says it is, so it holds for questions worded in any way.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use crate::question::needs_judgement;
use crate::trajectory::{BlockRun, Iteration};

/// Why a `FINAL` came before the evidence its question needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Premature {
    /// No code had run: the answer rests on nothing the model has seen.
    NoCodeRan,
    /// The question says the items carry no label and must be judged, and nothing was judged:
    /// no sub-model call (`llm_classify`, `llm_query`, ...) ran.
    NoJudgement,
    /// The answer repeats words of the worked examples in the instructions that no output of
    /// this run contains.
    ExampleProse,
    /// The answer is, word for word, one sent back before, though code has printed more since:
    /// the model did not read the new output. Seen on a paraphrased codeqa task (stop 27): sent
    /// back for "no code ran", the 1.5B grepped, printed `unittest/test/__init__.py 2 import
    /// sys`, and answered again "No absolute imports of `sys` ... found".
    Unchanged,
}

impl Premature {
    /// A short name, as trajectories and `quarry eval` record it.
    pub fn name(self) -> &'static str {
        match self {
            Premature::NoCodeRan => "no code ran",
            Premature::NoJudgement => "nothing judged",
            Premature::ExampleProse => "example prose",
            Premature::Unchanged => "unchanged",
        }
    }

    /// What the root model is told when its answer is sent back (after "Your FINAL did not count: ").
    pub fn feedback(self) -> &'static str {
        match self {
            Premature::NoCodeRan => {
                "no code has run yet, so it rests on nothing you have seen. Write code that finds the answer in the documents and look at what it prints first"
            }
            Premature::NoJudgement => {
                "the question says the items carry no labels, and no item has been judged yet (no label_records, count_labels, llm_classify or llm_query call has run), so any count or label now is a guess. For records, call count_labels(labels) (or count_labels(labels, by=\"user\") to count per user, or label_records(labels) to filter and count in Python) with the labels the question lists, and print the result"
            }
            Premature::ExampleProse => {
                "it repeats the worked example's words, not what your code printed for this question. Answer from your own code's output"
            }
            Premature::Unchanged => {
                "it is word for word the answer that was sent back before, yet your code has printed more since. Read that output again and answer from what it shows"
            }
        }
    }
}

/// The sub-model helpers of the REPL: a block that called one judged something.
const JUDGING_CALLS: [&str; 9] = [
    "llm_classify",
    "llm_query",
    "llm_query_batched",
    "llm_score",
    "rlm_query",
    "label_records",
    "count_labels",
    "files_where",
    "find_passage",
];

/// Whether a `FINAL(answer)` to `question` comes before its evidence, given the run so far
/// (`iterations`, and `runs`: the blocks of the turn that gave the answer) and the sub-calls
/// served. `examples` is the text of the instructions' worked examples.
pub fn premature_final(
    question: &str,
    answer: &str,
    iterations: &[Iteration],
    runs: &[BlockRun],
    sub_calls: usize,
    examples: &str,
) -> Option<Premature> {
    let all_runs = || iterations.iter().flat_map(|it| it.code_blocks.iter()).chain(runs.iter());
    let outputs = outputs(all_runs());
    if copies_examples(answer, examples, &format!("{question}\n{outputs}")) {
        return Some(Premature::ExampleProse);
    }
    // Code ran when a block did more than answer and finished or printed before it failed (a
    // block that prints its grep hits and then trips on a last line has shown evidence).
    let showed = |r: &BlockRun| r.result.error.is_none() || !r.result.stdout.trim().is_empty();
    if !all_runs().any(|r| showed(r) && !only_final(&r.block.code)) {
        return Some(Premature::NoCodeRan);
    }
    let judged = sub_calls > 0
        || all_runs().any(|r| r.result.error.is_none() && JUDGING_CALLS.iter().any(|f| r.block.code.contains(f)));
    if !judged && needs_judgement(question) {
        return Some(Premature::NoJudgement);
    }
    None
}

/// Whether `answer` is the one sent back before (`sent_back`), case, spacing and a final full
/// stop aside, with new output shown since (`new_output`): the model answered past it.
pub fn unchanged_answer(answer: &str, sent_back: Option<&str>, new_output: bool) -> bool {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").trim_end_matches('.').to_lowercase();
    new_output && sent_back.is_some_and(|s| norm(s) == norm(answer))
}

/// What the blocks showed the model: each one's printed output and trailing value.
pub fn outputs<'a>(runs: impl Iterator<Item = &'a BlockRun>) -> String {
    runs.map(|r| format!("{}\n{}\n", r.result.stdout, r.result.value.as_deref().unwrap_or(""))).collect()
}

/// A block that does nothing but answer (`FINAL(...)` or `FINAL_VAR(...)`, comments aside).
fn only_final(code: &str) -> bool {
    code.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).all(|l| l.starts_with("FINAL"))
}

/// Five words in a row of `answer` that the worked examples hold and `seen` (the question and
/// every output of the run) does not: the answer was copied, not found. Five words: the copied
/// answers seen were whole sentences ("64 negative reviews; users 75 and 311 wrote two or
/// more"), while a true answer that shares a phrase with an example ("the notice period is")
/// shares it with the output it came from too.
fn copies_examples(answer: &str, examples: &str, seen: &str) -> bool {
    const N: usize = 5;
    let seen = shingles(seen, N);
    let examples = shingles(examples, N);
    shingles(answer, N).iter().any(|s| examples.contains(s) && !seen.contains(s))
}

fn shingles(text: &str, n: usize) -> HashSet<String> {
    let words: Vec<String> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    words.windows(n).map(|w| w.join(" ")).collect()
}

/// A question that asks for more than one value or for an explanation: its answer is not cut.
static WANTS_PROSE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:list|all|every|each|summar\w*|explain|why|how\s+does|describe|compare|pairs?)\b")
        .expect("valid regex")
});

/// Whether `answer` is a line copied from the run's output where the question asks for one
/// value: the 1.5B, asked for a passcode, found the right line with grep and answered with the
/// whole 600-character line. Copied: at least 80% of its five-word runs are in `outputs`.
pub fn copied_line(question: &str, answer: &str, outputs: &str) -> bool {
    const N: usize = 5;
    if answer.chars().count() < 160 || WANTS_PROSE.is_match(question) {
        return false;
    }
    let own = shingles(answer, N);
    let seen = shingles(outputs, N);
    !own.is_empty() && own.iter().filter(|s| seen.contains(*s)).count() * 5 >= own.len() * 4
}

/// The `path:line` references an answer makes (`contracts/lease.txt:12`, `notes.txt:3-5`),
/// kept when the answer is cut to its value.
pub fn references(answer: &str) -> Vec<String> {
    static REF: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[\w./-]+\.\w{1,5}:\d+(?:-\d+)?").expect("valid regex"));
    let mut out: Vec<String> = Vec::new();
    for m in REF.find_iter(answer) {
        if !out.iter().any(|r| r == m.as_str()) {
            out.push(m.as_str().to_string());
        }
    }
    out
}

/// The worked examples of a system prompt: everything from its first "Example".
pub fn examples_of(prompt: &str) -> &str {
    prompt.find("Example").map_or("", |i| &prompt[i..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::CodeBlock;
    use quarry_repl::ReplResult;

    fn ran(code: &str, stdout: &str, error: Option<&str>) -> BlockRun {
        BlockRun {
            block: CodeBlock { lang: "repl".into(), code: code.into() },
            result: ReplResult { stdout: stdout.into(), error: error.map(Into::into), ..Default::default() },
            repaired_from: None,
        }
    }

    const EXAMPLES: &str = "Example 3.\nYour reply:\nFINAL(Answer: 64 negative reviews; users 75 and 311 wrote two or more.)\nThe output answers the question, so your reply is:";

    #[test]
    fn a_count_of_unlabelled_items_before_any_judgement_is_sent_back() {
        let q = "The labels are not in the data; each question has to be judged as one of: entity, place. How many questions are 'place'?";
        let load = [ran("rows = records()\nprint(len(rows), rows[:2])", "1003 [{...}]", None)];
        assert_eq!(
            premature_final(q, "There are 1003 'place' questions.", &[], &load, 0, EXAMPLES),
            Some(Premature::NoJudgement)
        );
        // Once the items were labelled (by code or by any served sub-call) the answer stands.
        let label = ran(
            "labels = llm_classify([r['text'] for r in rows], ['entity', 'place'])\nprint(labels.count('place'))",
            "412",
            None,
        );
        assert_eq!(premature_final(q, "412", &[], &[load[0].clone(), label], 0, EXAMPLES), None);
        assert_eq!(premature_final(q, "412", &[], &load, 3, EXAMPLES), None);
        // A call that failed judged nothing.
        let failed = ran("labels = llm_classify(rows)", "", Some("TypeError: ..."));
        assert_eq!(
            premature_final(q, "412", &[], &[load[0].clone(), failed], 0, EXAMPLES),
            Some(Premature::NoJudgement)
        );
    }

    #[test]
    fn an_answer_before_any_code_ran_or_copied_from_the_examples_is_sent_back() {
        let q = "What is the access code for the vault?";
        assert_eq!(premature_final(q, "7391", &[], &[], 0, EXAMPLES), Some(Premature::NoCodeRan));
        let failed = [ran("grep(", "", Some("SyntaxError"))];
        assert_eq!(premature_final(q, "7391", &[], &failed, 0, EXAMPLES), Some(Premature::NoCodeRan));
        let answer_only = [ran("# the code\nFINAL('7391')", "", None)];
        assert_eq!(premature_final(q, "7391", &[], &answer_only, 0, EXAMPLES), Some(Premature::NoCodeRan));
        let grep = [ran("grep('code')", "vault.txt 3 The access code is 7391.", None)];
        assert_eq!(premature_final(q, "The access code is 7391 (vault.txt:3).", &[], &grep, 0, EXAMPLES), None);
        assert_eq!(
            premature_final(
                q,
                "Answer: 64 negative reviews; users 75 and 311 wrote two or more.",
                &[],
                &grep,
                0,
                EXAMPLES
            ),
            Some(Premature::ExampleProse)
        );
        assert_eq!(
            premature_final(q, "The output answers the question, so your reply is: 7391", &[], &grep, 0, EXAMPLES),
            Some(Premature::ExampleProse)
        );
        // Words an example shares with this run's own output are evidence, not a copy.
        let same = [ran("grep('reviews')", "64 negative reviews: users 75 and 311 wrote two or more", None)];
        assert_eq!(
            premature_final(q, "64 negative reviews; users 75 and 311 wrote two or more", &[], &same, 0, EXAMPLES),
            None
        );
    }

    #[test]
    fn a_long_line_copied_from_the_output_is_told_apart_from_an_answer_in_own_words() {
        let line = "Security notice 14 (rev. 3): following the audit of March, the door controller of the east vault was re-keyed, and the passcode for the east vault is now 7391-ALPHA; staff must not write it down or share it.";
        let output = format!("memo.txt 3 {line}\nmemo.txt 4 other text");
        assert!(copied_line("What is the passcode for the east vault?", line, &output));
        assert!(!copied_line("What is the passcode for the east vault?", "7391-ALPHA (memo.txt:3)", &output));
        assert!(!copied_line("List every notice about the vault.", line, &output), "a list is not cut");
        let own = "The east vault was re-keyed after an audit in March; its new passcode, which staff are told not to write down or share with anyone, is 7391-ALPHA according to the security notice in the memo.";
        assert!(!copied_line("What is the passcode for the east vault?", own, &output));
        assert_eq!(references("7391 (memo.txt:3, a/b.md:4-6; memo.txt:3)"), ["memo.txt:3", "a/b.md:4-6"]);
    }

    #[test]
    fn the_examples_are_cut_from_the_system_prompt() {
        assert!(examples_of(crate::rlm::SYSTEM_PROMPT).starts_with("Example 1."));
        assert!(examples_of(crate::rlm::SYSTEM_PROMPT).contains("64 negative reviews"));
    }
}
