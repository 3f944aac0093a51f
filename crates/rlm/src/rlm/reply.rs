//! Reading a root reply: what of it runs. Replies are cut when they loop, blocks cut by the
//! token limit keep the code before the cut, a block of comments is no code, and an error
//! message copied back is told from code.

use quarry_llm::{Completion, FinishReason};

use crate::parse::{parse_reply, FinalAnswer, Reply};

/// Watches a streamed reply for the loop small models fall into: the 1.5B model wrote the same
/// four comment lines over and over until the turn's token limit (two minutes here), and since
/// greedy decoding gives the same reply to the same conversation, three turns running.
#[derive(Debug, Default)]
pub(crate) struct RepetitionGuard {
    line: String,
    seen: std::collections::HashMap<String, usize>,
    pub(super) tripped: bool,
}

impl RepetitionGuard {
    /// A comment line may appear this often; the next one ends the reply.
    const COMMENT_REPEATS: usize = 2;
    /// Any other line: code repeats lines legitimately (a print loop after each of four greps).
    const LINE_REPEATS: usize = 5;

    /// Takes the next piece of the reply; false once it is looping.
    pub(super) fn push(&mut self, text: &str) -> bool {
        for c in text.chars() {
            if c != '\n' {
                self.line.push(c);
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let line = line.trim();
            // Short lines ("# ---", "print()", "else:") repeat in honest code.
            if line.chars().filter(|c| c.is_alphabetic()).count() < 8 {
                continue;
            }
            let n = self.seen.entry(line.to_string()).or_default();
            *n += 1;
            let limit = if line.starts_with('#') { Self::COMMENT_REPEATS } else { Self::LINE_REPEATS };
            if *n > limit {
                self.tripped = true;
            }
        }
        !self.tripped
    }
}

/// What is left of a block cut off mid-way (by the token limit or the repetition guard): the
/// whole lines before the cut, each comment once. With code among them, the code up to its last
/// complete statement and `true`; without, the first few comments (a trace of what the model
/// meant, which runs as nothing) and `false`.
pub(super) fn salvage_cut_block(code: &str) -> (String, bool) {
    let mut comments = std::collections::HashSet::new();
    let lines: Vec<&str> = code
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter(|l| {
            let t = l.trim();
            !t.starts_with('#') || comments.insert(t)
        })
        .collect();
    let mut kept = lines.as_slice();
    while let Some((last, rest)) = kept.split_last() {
        let t = last.trim();
        if !(t.is_empty() || t.starts_with('#') || t.ends_with(':')) {
            break;
        }
        kept = rest;
    }
    if comment_only(&kept.concat()) {
        (lines.iter().take(3).copied().collect(), false)
    } else {
        (kept.concat(), true)
    }
}

/// What kept (part of) a reply from running as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Defect {
    None,
    /// A block was opened and never closed, and the reply was not cut: it did not run.
    Unterminated,
    /// The reply was cut mid-block (token limit or repetition); `salvaged` when the code
    /// before the cut ran.
    Cut {
        salvaged: bool,
    },
    /// The only block held nothing but comments.
    CommentsOnly,
    /// The reply was an error message the model copied (see `echoes_error`), and no repair of
    /// the code that failed could run in its place.
    EchoedError,
}

/// A reply cut off inside a block keeps the code before the cut, closed so it runs; the
/// conversation gets that shortened reply rather than the loop that filled the turn, which the
/// model would otherwise copy.
pub(super) fn cut_to_what_runs(text: String, finish: FinishReason) -> (String, Reply, Defect) {
    let reply = parse_reply(&text);
    let Some((start, code)) = reply.open_block.clone() else {
        return (text, reply, Defect::None);
    };
    if finish != FinishReason::Length {
        return (text, reply, Defect::Unterminated);
    }
    let (kept, salvaged) = salvage_cut_block(&code);
    let text = format!("{}{}\n```", &text[..start], kept.trim_end());
    let reply = parse_reply(&text);
    (text, reply, Defect::Cut { salvaged })
}

/// A block with nothing but comments and blank lines: small models write their plan as one.
pub(super) fn comment_only(code: &str) -> bool {
    code.lines().all(|l| l.trim().is_empty() || l.trim().starts_with('#'))
}

/// The stop string that ends a turn at a closing fence (an opening one has a language tag).
pub(super) const BLOCK_END: &str = "\n```\n";

/// Endpoints drop the stop string from the text (OpenAI's rule), which leaves the block the
/// stop string closed unterminated; put the fence back so the block runs.
pub(super) fn close_stopped_block(c: &Completion, stopping: bool) -> String {
    if stopping && c.finish_reason == FinishReason::Stop && parse_reply(&c.text).unterminated() {
        format!("{}\n```", c.text)
    } else {
        c.text.clone()
    }
}

/// A reply or block that is an error message rather than code: its first line (comments aside)
/// is a traceback's header or frame, or an exception line (`ValueError: ...`), which no Python
/// statement starts with, or a `print` of one (the 1.5B, held to code, printed the traceback
/// line by line: para-oolong-8k-002, stop 26).
pub(super) fn echoes_error(code: &str) -> bool {
    static EXCEPTION: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"^(?:print\(\s*f?["'])?(?:Traceback \(most recent call last\)|File "[^"]*", line \d+|Error: |(?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Z][A-Za-z]*(?:Error|Exception|Interrupt|Exit): )"#)
            .expect("a valid pattern")
    });
    code.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).is_some_and(|l| EXCEPTION.is_match(l))
}

/// The text of a block that is one `FINAL(...)` line, comments aside.
pub(super) fn bare_final(code: &str) -> Option<String> {
    let lines: Vec<&str> = code.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let [line] = lines[..] else {
        return None;
    };
    match parse_reply(line).final_answer {
        Some(FinalAnswer::Text(t)) => Some(t),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_llm::Usage;

    fn done(text: &str, finish_reason: FinishReason) -> Completion {
        Completion {
            text: text.into(),
            finish_reason,
            usage: Usage::default(),
            timings: Default::default(),
            model: "m".into(),
        }
    }

    #[test]
    fn a_block_cut_by_the_stop_string_is_closed_again() {
        let c = done("```repl\nprint(1)", FinishReason::Stop);
        assert_eq!(parse_reply(&close_stopped_block(&c, true)).blocks.len(), 1);
        assert_eq!(close_stopped_block(&c, false), c.text, "not when the stop string is off");
        let cut = done("```repl\nprint(1)", FinishReason::Length);
        assert!(parse_reply(&close_stopped_block(&cut, true)).unterminated(), "a length cut stays unrun");
        let closed = done("```repl\nprint(1)\n```", FinishReason::Stop);
        assert_eq!(close_stopped_block(&closed, true), closed.text);
    }

    #[test]
    fn the_repetition_guard_trips_on_a_repeated_comment_not_on_honest_code() {
        let mut g = RepetitionGuard::default();
        let comment = "# Let's read the text of the document that contains the phrase\n";
        assert!(g.push(comment) && g.push(comment));
        assert!(!g.push(&comment[..10]) || !g.push(&comment[10..]), "the third copy, even split, trips");
        let mut g = RepetitionGuard::default();
        let code = "for h in hits[:10]:\n    print(h['path'], h['line'], h['text'])\n# ---\n# ---\n# ---\n";
        assert!((0..4).all(|_| g.push(code)), "a print line four times and short separators are fine");
        assert!(g.push("    print(h['path'], h['line'], h['text'])\n"));
        assert!(!g.push("    print(h['path'], h['line'], h['text'])\n"), "but not six times");
    }

    #[test]
    fn a_cut_block_keeps_the_code_before_the_cut() {
        let cut =
            "hits = grep('x')\n# look at it\nfor h in hits:\n    print(h)\n# look at it\n# then read\nfor d in hi";
        assert_eq!(
            salvage_cut_block(cut),
            ("hits = grep('x')\n# look at it\nfor h in hits:\n    print(h)\n".into(), true)
        );
        assert_eq!(
            salvage_cut_block("x = 1\nfor h in hits:\n"),
            ("x = 1\n".into(), true),
            "a header without a body goes"
        );
        assert!(!salvage_cut_block("# plan\n# more plan\n").1);
        assert!(comment_only("# a\n\n  # b\n") && !comment_only("# a\nx = 1\n"));
        let (text, reply, defect) = cut_to_what_runs("Plan\n```repl\nx = 1\n# a\n# a\ny".into(), FinishReason::Length);
        assert_eq!((text.as_str(), defect), ("Plan\n```repl\nx = 1\n```", Defect::Cut { salvaged: true }));
        assert_eq!(reply.blocks.len(), 1);
        let (_, _, defect) = cut_to_what_runs("```repl\nx = 1\n".into(), FinishReason::Stop);
        assert_eq!(defect, Defect::Unterminated, "not cut: the model left it open");
    }

    #[test]
    fn an_error_message_written_as_code_is_told_from_code() {
        for echo in [
            "Traceback (most recent call last):\n  File \"<repl>\", line 3, in <module>\n",
            "# the error\nValueError: label_records()/count_labels() need every label\n",
            "  File \"<repl>\", line 2, in <module>\n",
            "Error: NameError: name 'rows' is not defined\n",
            "print(\"Error: Traceback (most recent call last):\")\n",
            "Error: SyntaxError: invalid syntax (line 1, column 14)\n    import jsonl = 1\nREPL variables: r\n",
            "json.decoder.JSONDecodeError: Expecting value\n",
        ] {
            assert!(echoes_error(echo), "{echo}");
        }
        for code in [
            "rows = records()\nprint(len(rows))\n",
            "# ValueError: seen last turn, so pass two labels\nprint(count_labels(['a', 'b']))\n",
            "try:\n    x = 1\nexcept ValueError: pass\n",
            "Errors = 3\n",
            "print(\"Errors found:\", n)\n",
        ] {
            assert!(!echoes_error(code), "{code}");
        }
    }
}
