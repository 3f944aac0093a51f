//! The user message after a turn: what each block printed, what went wrong, the variables,
//! and the nudge to answer or go on. Its sentences are `assets/prompts/loop.toml`'s.

use quarry_repl::ReplResult;

use super::prompts::{fill, sentences};
use super::reply::Defect;
use crate::parse::CodeBlock;
use crate::trajectory::BlockRun;

/// The lists, dicts and sets a block left empty: what a search or filter that found nothing
/// leaves behind.
pub(super) fn empty_collections(r: &ReplResult) -> Vec<&str> {
    r.variables
        .iter()
        .filter(|v| v.len == Some(0) && matches!(v.type_name.as_str(), "list" | "dict" | "set"))
        .map(|v| v.name.as_str())
        .collect()
}

/// When a block left a collection empty and filtered on words that occur in no document, says
/// so. The 1.5B root copied the prompt's worked example, `"Text:" in l`, over records whose
/// field is `Instance:`, and went round the same three blocks for twelve turns (oolong-32k-003,
/// docs/results.md): "nothing matched" did not tell it that its words were not the data's.
pub(super) fn absent_words_note(run: &BlockRun, occurs: impl Fn(&str) -> bool) -> String {
    static FILTER_WORDS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"(?:"([^"\\\n]{2,60})"|'([^'\\\n]{2,60})')\s+(?:not\s+)?in\b|\.(?:split|startswith|endswith|find|index|count|partition)\(\s*(?:"([^"\\\n]{2,60})"|'([^'\\\n]{2,60})')"#,
        )
        .expect("a valid pattern")
    });
    let r = &run.result;
    let empty = empty_collections(r);
    if r.error.is_some() || empty.is_empty() {
        return String::new();
    }
    let mut absent: Vec<&str> = Vec::new();
    for c in FILTER_WORDS.captures_iter(&run.block.code) {
        let word = (1..=4).find_map(|i| c.get(i)).map_or("", |m| m.as_str());
        if !word.trim().is_empty() && !absent.contains(&word) && !occurs(word) {
            absent.push(word);
        }
    }
    if absent.is_empty() {
        return String::new();
    }
    let words = absent.iter().map(|w| format!("{w:?}")).collect::<Vec<_>>().join(", ");
    fill(&sentences().absent_words, &[("names", &empty.join("`, `")), ("words", &words)])
}

/// The next user message: what each block printed, the variables, and a nudge.
pub(super) fn feedback(
    blocks: &[CodeBlock],
    runs: &[BlockRun],
    defect: Defect,
    final_note: Option<&str>,
    question: &str,
    chars: usize,
) -> String {
    let say = sentences();
    let mut s = String::new();
    match defect {
        Defect::None if blocks.is_empty() && final_note.is_none() => s.push_str(&say.no_code),
        Defect::CommentsOnly => s.push_str(&say.comments_only),
        Defect::EchoedError => s.push_str(&say.echoed_error),
        Defect::Cut { salvaged: false } => s.push_str(&say.cut_before_code),
        Defect::Cut { salvaged: true } => s.push_str(&say.cut_after_code),
        _ => {}
    }
    for (i, run) in runs.iter().enumerate() {
        let r = &run.result;
        let n = (i + 1).to_string();
        if run.repaired_from.is_some() {
            s.push_str(&fill(&say.repaired, &[("n", &n), ("code", run.block.code.trim_end())]));
        }
        s.push_str(&fill(&say.output_of, &[("n", &n)]));
        let mut empty = true;
        for (label, text) in [
            ("", Some(&r.stdout)),
            ("stderr: ", Some(&r.stderr)),
            ("Value: ", r.value.as_ref()),
            ("Error: ", r.error.as_ref()),
        ] {
            if let Some(t) = text.filter(|t| !t.trim().is_empty()) {
                s.push_str(label);
                s.push_str(&truncate(t.trim_end(), chars));
                s.push('\n');
                empty = false;
            }
        }
        if empty {
            s.push_str(&say.no_output);
        }
        let found_nothing = empty_collections(r);
        if r.error.is_none() && r.stdout.trim().is_empty() && !found_nothing.is_empty() {
            s.push_str(&fill(&say.found_nothing, &[("names", &found_nothing.join("`, `"))]));
        }
        if r.restarted {
            s.push_str(&say.restarted);
        }
    }
    if blocks.len() > runs.len() {
        s.push_str(&fill(&say.later_blocks, &[("n", &(blocks.len() - runs.len()).to_string())]));
    }
    if defect == Defect::Unterminated {
        s.push_str(&say.unterminated);
    }
    if let Some(note) = final_note {
        s.push_str(&fill(&say.final_not_counted, &[("note", &truncate(note, 500))]));
    }
    if let Some(last) = runs.last() {
        let vars: Vec<String> = last
            .result
            .variables
            .iter()
            .map(|v| match v.len {
                Some(n) => format!("{} ({}, len {n})", v.name, v.type_name),
                None => format!("{} ({})", v.name, v.type_name),
            })
            .collect();
        if !vars.is_empty() {
            s.push_str(&fill(&say.variables, &[("variables", &truncate(&vars.join(", "), 1000))]));
        }
    }
    s.push_str(&fill(&say.next_step, &[("question", question)]));
    s
}
/// Head and tail of `s` within `n` characters, with a note saying how much was left out.
pub(super) fn truncate(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        return s.to_string();
    }
    let head: String = s.chars().take(n / 2).collect();
    let tail: String = s.chars().skip(count - n / 2).collect();
    format!("{head}\n[... {} characters cut ...]\n{tail}", count - 2 * (n / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_head_and_tail() {
        assert_eq!(truncate("abcdef", 10), "abcdef");
        let t = truncate(&"x".repeat(50).replace("x", "ab"), 10);
        assert!(t.starts_with("ababa\n[... 90 characters cut ...]\n"), "{t}");
        assert!(t.ends_with("babab"), "{t}");
    }

    #[test]
    fn feedback_says_what_happened() {
        let blocks = vec![CodeBlock { lang: "repl".into(), code: "x".into() }];
        let runs = vec![BlockRun {
            repaired_from: None,
            block: blocks[0].clone(),
            result: ReplResult {
                error: Some("NameError: x".into()),
                restarted: true,
                variables: vec![quarry_repl::Variable { name: "hits".into(), type_name: "list".into(), len: Some(3) }],
                ..Default::default()
            },
        }];
        let f = feedback(&blocks, &runs, Defect::Unterminated, None, "Q?", 100);
        assert!(f.contains("Error: NameError: x"), "{f}");
        assert!(f.contains("restarted"), "{f}");
        assert!(f.contains("not closed"), "{f}");
        assert!(f.contains("REPL variables: hits (list, len 3)"), "{f}");
        assert!(f.contains("Question: Q?"), "{f}");
        let f = feedback(&[], &[], Defect::None, None, "Q?", 100);
        assert!(f.starts_with("Your reply had no ```repl code block"), "{f}");
    }

    #[test]
    fn an_empty_result_names_the_filter_words_no_document_holds() {
        let data = "Date: Jan 02, 2023 || User: 311 || Instance: Who wrote Hamlet ?";
        let run = |code: &str, len: u64| BlockRun {
            repaired_from: None,
            block: CodeBlock { lang: "repl".into(), code: code.into() },
            result: ReplResult {
                stdout: "0 []\n".into(),
                variables: vec![quarry_repl::Variable {
                    name: "records".into(),
                    type_name: "list".into(),
                    len: Some(len),
                }],
                ..Default::default()
            },
        };
        let copied = "records = [l for d in context for l in d.lines() if \"Text:\" in l and 'User:' in l]\nprint(len(records), records[:2])";
        let note = absent_words_note(&run(copied, 0), |w| data.contains(w));
        assert_eq!(
            note,
            "`records` is empty, and \"Text:\" occurs in none of the documents: filter on words the documents' own lines hold (print a few lines to see them).\n"
        );
        let split = "records = [r.split('Label:')[1] for r in rows if r]";
        assert!(absent_words_note(&run(split, 0), |w| data.contains(w)).contains("\"Label:\""));
        // Words the data holds, or a collection that is not empty, say nothing.
        let fine = "records = [l for d in context for l in d.lines() if 'Instance:' in l and 'x' in l]";
        assert_eq!(absent_words_note(&run(fine, 0), |w| data.contains(w)), "", "one-letter words are not filters");
        assert_eq!(absent_words_note(&run(copied, 5), |w| data.contains(w)), "");
    }
}
