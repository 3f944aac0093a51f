//! Reading a root model's reply: which code to run, and whether it declared a final answer.
//!
//! Small models are sloppy writers, so the rules are strict about structure and lenient about
//! decoration:
//!
//! - **Code blocks** open with a line that is a fence plus a language tag `repl`, `python`,
//!   `python3` or `py` (any case, indentation allowed) and close with a line that is *only* a
//!   fence. A fence anywhere else on a line — `print("```python")`, a comment mentioning
//!   ```` ```repl ```` — neither opens nor closes anything. Bare ```` ``` ```` fences and other
//!   languages are *not* run: models use them to quote REPL output or show text, and running
//!   those would only produce syntax errors that count against the error budget.
//! - An **unterminated** block (the reply was cut off, or the model forgot the fence) is not run
//!   — half a loop is worse than none — and is reported so the loop can say so to the model.
//! - A **final answer in prose** is a line that *starts* with `FINAL(` or `FINAL_VAR(` (any
//!   case) outside code blocks, or a `Final:` / `Final answer:` line. "I will call FINAL when
//!   done" is a sentence, not an answer. The argument runs to the matching parenthesis (nested
//!   ones are fine, as are parentheses inside quotes) and may span lines. `FINAL(...)` inside
//!   code is the REPL's business (it shows up in
//!   [`ReplResult::final_answer`](quarry_repl::ReplResult)).

use serde::{Deserialize, Serialize};

/// One block of code the model asked to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeBlock {
    /// The fence's language tag as written (`repl`, `python`, ...).
    pub lang: String,
    pub code: String,
}

/// A final answer written in the reply's prose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum FinalAnswer {
    /// `FINAL(text)`: the text is the answer.
    Text(String),
    /// `FINAL_VAR(name)`: the answer is the REPL variable `name`.
    Var(String),
}

/// Everything the loop needs from one reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub blocks: Vec<CodeBlock>,
    pub final_answer: Option<FinalAnswer>,
    /// A code fence was opened and never closed; its code was not taken. Kept aside with the
    /// byte offset in the reply where that code starts, so a reply cut off mid-block can be
    /// salvaged up to the cut.
    pub open_block: Option<(usize, String)>,
}

impl Reply {
    /// A code fence was opened and never closed.
    pub fn unterminated(&self) -> bool {
        self.open_block.is_some()
    }
}

const LANGS: &[&str] = &["repl", "python", "python3", "py"];

/// Splits `text` into code blocks and prose, and finds a prose final answer.
pub fn parse_reply(text: &str) -> Reply {
    let mut reply = Reply::default();
    // Prose lines with their byte offsets, so a FINAL( argument can run across lines.
    let mut prose = String::new();
    let mut open: Option<(String, String)> = None; // (lang, code so far)
    let mut code_start = 0; // where the open block's code starts
    let mut in_other_fence = false; // a bare or non-Python fence: skipped, but still not prose
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        offset += line.len();
        if let Some((lang, code)) = open.as_mut() {
            if trimmed == "```" {
                reply.blocks.push(CodeBlock { lang: std::mem::take(lang), code: std::mem::take(code) });
                open = None;
            } else {
                code.push_str(line);
            }
            continue;
        }
        if in_other_fence {
            if trimmed == "```" {
                in_other_fence = false;
            }
            continue;
        }
        if let Some(tag) = trimmed.strip_prefix("```") {
            let tag = tag.trim();
            if LANGS.iter().any(|l| l.eq_ignore_ascii_case(tag)) {
                open = Some((tag.to_ascii_lowercase(), String::new()));
                code_start = offset;
            } else if tag.chars().all(|c| c.is_ascii_alphanumeric() || "+-_.".contains(c)) {
                in_other_fence = true;
            } else {
                // "```python is how you..." — a fence in a sentence opens nothing.
                prose.push_str(line);
            }
            continue;
        }
        prose.push_str(line);
    }
    reply.open_block = open.map(|(_, code)| (code_start, code));
    reply.final_answer = find_final(&prose);
    reply
}

/// The first line-anchored `FINAL(...)` / `FINAL_VAR(...)` in `prose`.
pub fn find_final(prose: &str) -> Option<FinalAnswer> {
    let mut offset = 0;
    for line in prose.split_inclusive('\n') {
        let start = offset + (line.len() - line.trim_start().len());
        offset += line.len();
        let rest = &prose[start..];
        // Models decorate: "**FINAL(...)**", "> FINAL(...)", "- FINAL(...)", "`FINAL(...)`".
        let stripped = rest.trim_start_matches(['*', '>', '-', '`', ' ', '\t']);
        // Any case: the 1.5B model wrote "Final(a.py, b.py)." on its own line for ten turns.
        let starts = |p: &str| stripped.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
        let is_var = starts("FINAL_VAR(");
        if !is_var && !starts("FINAL(") {
            // "Final: 13" and "Final answer: 13" on a line of their own, the 1.5B model's habit
            // when it has stopped writing code.
            if let Some(label) = ["FINAL ANSWER:", "FINAL:"].iter().find(|p| starts(p)) {
                let answer = stripped[label.len()..].lines().next().unwrap_or_default().trim();
                let answer = strip_trailing_decoration(answer.trim_matches(['*', '`']).trim());
                if !answer.is_empty() {
                    return Some(FinalAnswer::Text(answer.to_string()));
                }
            }
            continue;
        }
        let open = stripped.find('(').expect("checked above");
        let arg = balanced(&stripped[open + 1..]);
        let arg = unquote(arg.trim());
        return Some(if is_var {
            FinalAnswer::Var(arg.to_string())
        } else {
            FinalAnswer::Text(strip_trailing_decoration(arg).to_string())
        });
    }
    None
}

/// The text up to the parenthesis that closes an already-open one. Parentheses inside quotes
/// do not count. When none closes it (a cut-off reply), everything up to the last `)` — or all
/// of it — is the argument, as the reference's greedy regex would take.
fn balanced(s: &str) -> &str {
    let mut depth = 1usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q || c == '\n' {
                // An apostrophe in prose ("the tenant's") must not swallow the rest: a quote
                // never spans lines.
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' if starts_string(s, i) => quote = Some(c),
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &s[..i];
                }
            }
            _ => {}
        }
    }
    match s.rfind(')') {
        Some(i) => &s[..i],
        None => s.trim_end(),
    }
}

/// A quote opens a string only where a string could start (after `(`, `,`, `=`, space or at the
/// start), so the apostrophe in "tenant's" is text.
fn starts_string(s: &str, i: usize) -> bool {
    match s[..i].chars().next_back() {
        None => true,
        Some(p) => p == '(' || p == ',' || p == '=' || p.is_whitespace(),
    }
}

/// `"30 days"` → `30 days`: in prose the quotes are the model writing Python out of habit.
fn unquote(s: &str) -> &str {
    for q in ["\"\"\"", "'''", "\"", "'"] {
        if s.len() >= 2 * q.len() && s.starts_with(q) && s.ends_with(q) {
            return s[q.len()..s.len() - q.len()].trim();
        }
    }
    s
}

fn strip_trailing_decoration(s: &str) -> &str {
    s.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Option<FinalAnswer> {
        Some(FinalAnswer::Text(s.into()))
    }

    #[test]
    fn repl_and_python_blocks_are_taken_in_order() {
        let r = parse_reply("Let me look.\n```repl\nx = 1\nprint(x)\n```\nthen\n```python\ny = 2\n```\n");
        assert_eq!(r.blocks.len(), 2);
        assert_eq!(r.blocks[0], CodeBlock { lang: "repl".into(), code: "x = 1\nprint(x)\n".into() });
        assert_eq!(r.blocks[1].code, "y = 2\n");
        assert_eq!(r.final_answer, None);
        assert!(!r.unterminated());
    }

    #[test]
    fn fence_tags_are_case_insensitive_and_may_be_indented() {
        let r = parse_reply("  ```Python\n  a = 1\n  ```\n```py\nb = 2\n```");
        assert_eq!(r.blocks.len(), 2);
        assert_eq!(r.blocks[0].code, "  a = 1\n");
        assert_eq!(r.blocks[1].code, "b = 2\n", "a closing fence at the very end (no newline) closes");
    }

    #[test]
    fn a_fence_inside_a_string_or_comment_does_not_close_the_block() {
        let code = "print(\"```python\")\n# end with ``` here\ns = '''\n```\n'''\n";
        // The lone ``` line inside the triple-quoted string *does* close: line-anchored fences
        // win, which is the documented rule (and what every chat UI renders too).
        let r = parse_reply(&format!("```repl\n{code}```\n"));
        assert_eq!(r.blocks[0].code, "print(\"```python\")\n# end with ``` here\ns = '''\n");
        let r = parse_reply("```repl\nprint('```python')\nx = 1  # then ```\n```\n");
        assert_eq!(r.blocks.len(), 1);
        assert_eq!(r.blocks[0].code, "print('```python')\nx = 1  # then ```\n");
    }

    #[test]
    fn bare_and_other_language_fences_are_not_run() {
        let r = parse_reply("Output was:\n```\nFINAL(not this)\n```\n```text\nhello\n```\n```bash\nrm -rf /\n```\n");
        assert!(r.blocks.is_empty());
        assert_eq!(r.final_answer, None, "a FINAL quoted in a fence is not prose");
    }

    #[test]
    fn unterminated_block_is_reported_and_not_run() {
        let t = "Plan.\n```repl\nfor x in range(3):\n    print(x)\nFINAL(3)";
        let r = parse_reply(t);
        assert!(r.blocks.is_empty());
        assert!(r.unterminated());
        assert_eq!(r.final_answer, None, "FINAL inside the unterminated block is code, not prose");
        let (start, code) = r.open_block.clone().expect("the open block is kept aside");
        assert_eq!(&t[start..], code, "the offset points at the block's code");
    }

    #[test]
    fn a_closed_block_before_an_unterminated_one_is_kept() {
        let r = parse_reply("```repl\na = 1\n```\n```python\nb = ");
        assert_eq!(r.blocks.len(), 1);
        assert!(r.unterminated());
    }

    #[test]
    fn final_in_prose_at_line_start() {
        assert_eq!(parse_reply("Done.\nFINAL(30 days)").final_answer, text("30 days"));
        assert_eq!(parse_reply("   FINAL(  30 days  )  \n").final_answer, text("30 days"));
        assert_eq!(parse_reply("**FINAL(30 days)**").final_answer, text("30 days"));
        assert_eq!(parse_reply("FINAL(\"30 days\")").final_answer, text("30 days"));
        assert_eq!(parse_reply("FINAL('''30\ndays''')").final_answer, text("30\ndays"));
    }

    #[test]
    fn final_mentioned_in_a_sentence_is_not_an_answer() {
        assert_eq!(parse_reply("I will call FINAL(answer) when done.").final_answer, None);
        assert_eq!(parse_reply("Next I use FINAL_VAR(x).").final_answer, None);
        assert_eq!(parse_reply("FINAL answer soon").final_answer, None, "no parenthesis");
        assert_eq!(parse_reply("FINALLY(3)").final_answer, None);
        assert_eq!(parse_reply("The final(ly) answer").final_answer, None);
    }

    #[test]
    fn a_final_label_line_is_an_answer() {
        assert_eq!(parse_reply("The count is below.\nFinal: 13").final_answer, text("13"));
        assert_eq!(parse_reply("**Final Answer:** a.py\nmore").final_answer, text("a.py"));
        assert_eq!(parse_reply("Final:").final_answer, None, "empty");
        assert_eq!(parse_reply("The final: nope").final_answer, None, "not at line start");
    }

    #[test]
    fn final_in_any_case_at_line_start() {
        assert_eq!(parse_reply("Answer: a.py\n\nFinal(a.py, b.py).").final_answer, text("a.py, b.py"));
        assert_eq!(parse_reply("final_var(x)").final_answer, Some(FinalAnswer::Var("x".into())));
    }

    #[test]
    fn final_with_nested_parentheses() {
        assert_eq!(parse_reply("FINAL(30 days (see a.txt, line 2))").final_answer, text("30 days (see a.txt, line 2)"));
        assert_eq!(parse_reply("FINAL(f(g(x)) = 2) trailing").final_answer, text("f(g(x)) = 2"));
        assert_eq!(parse_reply("FINAL(\"a ) inside quotes\")").final_answer, text("a ) inside quotes"));
        assert_eq!(
            parse_reply("FINAL(the tenant's notice (30 days))").final_answer,
            text("the tenant's notice (30 days)")
        );
    }

    #[test]
    fn final_spanning_lines_and_unbalanced() {
        assert_eq!(parse_reply("FINAL(line one\nline two)\nbye").final_answer, text("line one\nline two"));
        assert_eq!(parse_reply("FINAL(cut off (mid").final_answer, text("cut off (mid"));
        assert_eq!(parse_reply("FINAL(a (b) c").final_answer, text("a (b"), "falls back to the last ')'");
    }

    #[test]
    fn final_inside_code_or_code_comment_is_not_prose() {
        let r = parse_reply("```repl\n# FINAL(wrong)\nx = 1\nFINAL(x)\n```\n");
        assert_eq!(r.final_answer, None);
        assert_eq!(r.blocks.len(), 1);
    }

    #[test]
    fn final_var_in_prose() {
        assert_eq!(parse_reply("FINAL_VAR(answer)").final_answer, Some(FinalAnswer::Var("answer".into())));
        assert_eq!(parse_reply("FINAL_VAR('result')").final_answer, Some(FinalAnswer::Var("result".into())));
    }

    #[test]
    fn code_then_final_in_one_reply_gives_both() {
        let r = parse_reply("```repl\nx = 2\n```\nFINAL_VAR(x)\n");
        assert_eq!(r.blocks.len(), 1);
        assert_eq!(r.final_answer, Some(FinalAnswer::Var("x".into())));
    }

    #[test]
    fn the_first_prose_final_wins() {
        assert_eq!(parse_reply("FINAL(one)\nFINAL(two)").final_answer, text("one"));
    }

    #[test]
    fn a_fence_mid_sentence_is_prose() {
        let r = parse_reply("Use ```python fences.\nFINAL(ok)");
        assert!(r.blocks.is_empty());
        assert_eq!(r.final_answer, text("ok"));
    }

    #[test]
    fn empty_reply() {
        assert_eq!(parse_reply(""), Reply::default());
    }
}
