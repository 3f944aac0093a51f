//! The loop's memory of what ran: whether a turn repeats code that ran or failed, the last
//! failure, and what kind of error a result holds.

use quarry_repl::ReplResult;

use crate::parse::CodeBlock;
use crate::trajectory::Iteration;

/// `blocks` are, block for block, the code in `ran` (whitespace at the ends aside).
pub(super) fn same_code<'a>(ran: impl Iterator<Item = &'a str>, blocks: &[CodeBlock]) -> bool {
    !blocks.is_empty() && ran.map(str::trim).eq(blocks.iter().map(|b| b.code.trim()))
}

/// The last turn whose code ran: a turn that repeated code was not run, and the code after it
/// is compared with what did run (the 1.5B wrote one failing block three turns running; the
/// third, compared with the skipped second, ran and failed again).
pub(super) fn last_that_ran(iterations: &[Iteration]) -> Option<&Iteration> {
    iterations.iter().rev().find(|it| !it.code_blocks.is_empty())
}

/// The same code as the last turn that ran (see `last_that_ran`), which ran without error.
pub(super) fn repeats_last_turn(blocks: &[CodeBlock], last: Option<&Iteration>) -> bool {
    let Some(last) = last else {
        return false;
    };
    last.code_blocks.iter().all(|r| r.result.error.is_none())
        && same_code(last.code_blocks.iter().map(|r| r.block.code.as_str()), blocks)
}

/// The error of the last turn, when it failed and `blocks` are its code again (as written or
/// as repaired).
pub(super) fn repeats_failed_turn(blocks: &[CodeBlock], last: Option<&Iteration>) -> Option<String> {
    let last = last?;
    let error = last.code_blocks.iter().find_map(|r| r.result.error.clone())?;
    let as_run = last.code_blocks.iter().map(|r| r.block.code.as_str());
    let as_written = last.code_blocks.iter().map(|r| r.repaired_from.as_deref().unwrap_or(&r.block.code));
    (same_code(as_run, blocks) || same_code(as_written, blocks)).then_some(error)
}

/// The code and result of the last block that failed, in the last turn whose code ran.
pub(super) fn last_failure(iterations: &[Iteration]) -> Option<(String, ReplResult)> {
    let last = last_that_ran(iterations)?;
    let failed = last.code_blocks.iter().find(|r| r.result.error.is_some())?;
    Some((failed.block.code.clone(), failed.result.clone()))
}

/// Nothing of a block that does not compile has run, so repairing it changes no state.
pub(super) fn is_syntax_error(r: &ReplResult) -> bool {
    r.error
        .as_deref()
        .is_some_and(|e| ["SyntaxError:", "IndentationError:", "TabError:"].iter().any(|p| e.starts_with(p)))
}

/// A runtime error whose message says what to change (the worker's `hint`: the REPL's own
/// hints, Python's "Did you mean", strptime's format mismatch). Given the whole conversation,
/// the 1.5B root echoed such an error back as its reply, turn after turn; asked only to fix the
/// code, it has the one edit to make.
pub(super) fn names_its_fix(r: &ReplResult) -> bool {
    r.error.is_some() && r.hint.is_some()
}

pub(super) fn has_answer_dict(last: Option<&ReplResult>) -> bool {
    last.is_some_and(|r| r.variables.iter().any(|v| v.name == "answer" && v.type_name == "dict"))
}
