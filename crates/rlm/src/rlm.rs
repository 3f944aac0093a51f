//! The Recursive Language Model loop: the root model sees the folder's shape and the question,
//! writes code, sees (truncated) results, and repeats until it gives a final answer or a
//! [`Budget`] limit ends the run.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use quarry_index::Folder;
use quarry_llm::{ChatMessage, ChatRequest, Completion, DeltaSink, FinishReason, LanguageModel, Sampling, Usage};
use quarry_repl::{Context, ContextDocument, ReplResult, SandboxConfig};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::budget::{Budget, StopReason};
use crate::context::FolderSummary;
use crate::evidence::{copied_line, examples_of, outputs, premature_final, references, Premature};
use crate::host::{Labeller, Recursion, RunHost, SubCallStats};
use crate::parse::{parse_reply, CodeBlock, FinalAnswer};
use crate::question::{listed_labels, needs_judgement};
use crate::repl_thread::ReplThread;
use crate::trajectory::{AnswerSource, BlockRun, Event, Iteration, Metadata, Trajectory};
use crate::{CancelToken, Error, Result};

/// The root model's instructions, with a worked example sized for small coder models.
pub const SYSTEM_PROMPT: &str = include_str!("../../../assets/prompts/rlm.md");

/// Everything about a run except the models and the folder.
#[derive(Debug, Clone)]
pub struct RlmConfig {
    pub budget: Budget,
    pub sandbox: SandboxConfig,
    /// Tokens one root turn may generate.
    pub root_max_tokens: Option<usize>,
    /// Tokens one `llm_query` answer may generate.
    pub sub_max_tokens: Option<usize>,
    pub sampling: Sampling,
    /// Characters of each of a block's stdout, stderr, error and value fed back to the root
    /// model (head and tail kept): the point of the method is that big data stays in the REPL.
    pub feedback_chars: usize,
    /// Files listed by name in the folder description.
    pub max_listed_files: usize,
    /// End each root turn at its first closed code block (a stop string on the closing fence).
    /// Small models otherwise go on to invent the REPL's output and answer from it — the 0.5B
    /// model wrote "The REPL shows: ..." with made-up lines under its first grep. It costs
    /// models that write several blocks per turn nothing but an extra turn.
    pub stop_at_block_end: bool,
    /// Give a block that does not compile, or fails with an error that names its fix (see
    /// `names_its_fix`), one repair round: the root model sees only the code and the error and
    /// answers with the corrected block, which runs in its place.
    pub repair_syntax: bool,
    /// Levels of RLM runs: 1 makes `rlm_query` a plain sub-model call (the paper's setting);
    /// 2 lets the root start child runs, whose own `rlm_query` calls are plain sub-calls.
    pub max_depth: usize,
    /// Constrain root replies with a grammar (local models and llama.cpp servers only): a turn
    /// is one optional line of plan and exactly one ```repl block, or one FINAL line. It rules
    /// out the format failures small models make (prose without code, echoing the REPL's
    /// output, a second block). Off by default: see docs/results.md for its measured effect.
    pub root_grammar: bool,
    /// The root endpoint takes GBNF grammars (Quarry's engine, llama-server). Without it no
    /// grammar is sent, whatever `root_grammar` says.
    pub accepts_grammar: bool,
    /// The sub endpoint takes GBNF grammars: `llm_classify` then constrains each reply to one
    /// allowed label per item. Without it the replies are parsed as written (the 0.5B model,
    /// unconstrained, named no allowed label for 101 of 120 TREC questions; docs/results.md).
    pub sub_accepts_grammar: bool,
    /// Which model `llm_classify` labels with where models score (see [`Labeller`]).
    pub labeller: Labeller,
    /// Send a `FINAL` that comes before its evidence (see [`crate::evidence`]) back to the root
    /// model with the reason, once per reason. Off, the check still runs and the trajectory
    /// records what it found (`Iteration::premature`), which is how its effect is measured.
    pub check_final: bool,
    /// When the question says its items carry no label and must be judged
    /// ([`crate::evidence::needs_judgement`]), hold the first turn to [`JUDGE_GRAMMAR`]: the
    /// 1.5B root otherwise loads the records, prints two and answers from the row count.
    pub judge_first: bool,
}

/// A root turn under [`RlmConfig::root_grammar`]. Code lines cannot hold backticks, so the
/// block ends only at a fence on its own line; the grammar is then complete and the turn ends.
pub const ROOT_GRAMMAR: &str = r#"root ::= final | plan? block
plan ::= [^`\n] [^`\n]{0,199} "\n"
block ::= "```repl\n" line line* "```"
line ::= [^`\n]* "\n"
final ::= "FINAL(" [^\n]+ ")" | "FINAL_VAR(" [A-Za-z_] [A-Za-z0-9_]* ")"
"#;

/// The turn after a reply with neither code nor an answer: one line of plan at most, then a
/// block whose code starts by its third line (the 1.5B model otherwise wrote "# No documents
/// yet" as its whole block, three turns running, and given room it repeats a comment forever).
/// The plan line is at most 200 characters: unbounded, the 1.5B echoed the loop's feedback as
/// one line, repeating its sentences, to the turn's 1,024-token limit (oolong-32k-000).
/// Its first line of code starts with a lower-case letter or `_`, as Python statements do and
/// an echoed `Traceback (most recent call last):` or `ValueError: ...` does not (see
/// `echoes_error`).
pub const CODE_GRAMMAR: &str = r##"root ::= plan? block
plan ::= [^`\n] [^`\n]{0,199} "\n"
block ::= "```repl\n" (comment | "\n")? (comment | "\n")? code line* "```"
comment ::= [ ]* "#" [^`\n]* "\n"
code ::= [a-z_] [^`\n]* "\n"
line ::= [^`\n]* "\n"
"##;

/// A block whose first line of code (after a comment at most) calls one of `$calls`.
macro_rules! judge_grammar {
    ($calls:literal) => {
        concat!(
            r##"root ::= plan? block
plan ::= [^`\n] [^`\n]{0,199} "\n"
block ::= "```repl\n" comment? judge line* "```"
comment ::= "#" [^`\n]* "\n"
judge ::= (name " = ")? "print("? call [^`\n]* "\n"
name ::= [a-z_] [a-z0-9_]{0,19}
call ::= "##,
            $calls,
            r##"
line ::= [^`\n]* "\n"
"##
        )
    };
}

/// The turn after an answer sent back because nothing judged items the question says carry no
/// label: a block whose first line of code calls a judging helper, its arguments the model's
/// own. Told in words to call `count_labels` with the question's labels, the 1.5B answered the
/// same unlabelled count again (para-oolong-8k-000: "116 questions fall under 'number'" twice,
/// 0 sub-calls); the grammar leaves it the labels and the counting to write, not the choice.
pub const JUDGE_GRAMMAR: &str = judge_grammar!(
    r#""count_labels(" | "label_records(" | "llm_classify(" | "llm_query_batched(" | "files_where(" | "find_passage(""#
);

/// [`JUDGE_GRAMMAR`] for a folder of records: given the general one, the 1.5B labelled the two
/// files (`llm_classify(context, ["positive", "negative"])`) instead of their 516 records
/// (para-oolong-8k-002).
///
/// Its list holds two labels or more: the 1.5B otherwise passes only the label asked about
/// (`count_labels(["entity"])`, oolong-8k-000), which judges nothing. Where the question lists
/// its labels, [`judge_records_grammar`] writes that list in for the model.
pub const JUDGE_RECORDS_GRAMMAR: &str = judge_grammar!(
    r#"("count_labels([" | "label_records([") label ", " label (", " label)* "]"
label ::= "\"" [^"\n]{1,60} "\"" | "'" [^'\n]{1,60} "'""#
);

/// [`JUDGE_RECORDS_GRAMMAR`] with the question's own labels as the list, written out: left to
/// copy them, the 1.5B split "description and abstract concept" in two and wrote "entity" twice
/// (stop 23), so every record was judged against a set the question does not have.
pub fn judge_records_grammar(labels: &[String]) -> String {
    if labels.len() < 2 {
        return JUDGE_RECORDS_GRAMMAR.to_string();
    }
    let list = labels.iter().map(|l| serde_json::to_string(l).expect("strings serialize")).collect::<Vec<_>>();
    let literal = serde_json::to_string(&format!("[{}]", list.join(", "))).expect("strings serialize");
    JUDGE_RECORDS_GRAMMAR
        .replace(
            r#"("count_labels([" | "label_records([") label ", " label (", " label)* "]""#,
            &format!(r#"("count_labels(" | "label_records(") {literal}"#),
        )
        .lines()
        .filter(|l| !l.starts_with("label ::="))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The grammar a run holds a judging turn to: the records one with the question's labels
/// written in, or the general one.
fn judge_grammar_for(records: bool, labels: &[String]) -> String {
    if records {
        judge_records_grammar(labels)
    } else {
        JUDGE_GRAMMAR.to_string()
    }
}

/// The grammar of the turn after an answer sent back for `p`: the one instruction a small model
/// cannot ignore (see [`CODE_GRAMMAR`], [`JUDGE_GRAMMAR`]).
fn grammar_after(p: Premature, records: bool, labels: &[String]) -> Option<String> {
    match p {
        Premature::NoCodeRan => Some(CODE_GRAMMAR.to_string()),
        Premature::NoJudgement => Some(judge_grammar_for(records, labels)),
        Premature::ExampleProse => None,
    }
}

/// The answer probe's reply under the grammar.
const PROBE_GRAMMAR: &str = r#"root ::= "FINAL(" [^\n]+ ")" | "NOT FOUND"
"#;

/// Cutting a copied line to its value (see `Rlm::cut_to_value`).
const CUT_PROMPT: &str = "The text below answers the question but says much more. Reply with only the value the question asks for (a number, a name, a code, a date or a short phrase), copied exactly as the text writes it, and nothing else.";
const CUT_GRAMMAR: &str = r#"root ::= [^\n]{1,120}
"#;

/// The last "answer from what you have" turn under the grammar.
const FINAL_GRAMMAR: &str = r#"root ::= "FINAL(" [^\n]+ ")"
"#;

impl Default for RlmConfig {
    fn default() -> Self {
        RlmConfig {
            budget: Budget::default(),
            sandbox: SandboxConfig::default(),
            root_max_tokens: Some(1024),
            sub_max_tokens: Some(512),
            sampling: Sampling::default(),
            feedback_chars: 2000,
            max_listed_files: 40,
            stop_at_block_end: true,
            repair_syntax: true,
            max_depth: 2,
            root_grammar: false,
            accepts_grammar: true,
            sub_accepts_grammar: true,
            labeller: Labeller::Auto,
            check_final: true,
            judge_first: true,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// `None` only when the run was cancelled.
    pub answer: Option<String>,
    pub stop_reason: StopReason,
    /// Root turns taken, not counting the last "answer from what you have" turn.
    pub iterations: usize,
    /// Sub-model prompts actually sent.
    pub sub_calls: usize,
    /// Root and sub tokens together.
    pub usage: Usage,
    pub root_usage: Usage,
    pub sub_usage: Usage,
    pub seconds: f64,
    pub trajectory: Trajectory,
    /// What the run looked at (grep and search hits, chunks handed to sub-calls), for citations.
    pub sources: Vec<quarry_repl::Source>,
}

/// A root model, a sub model and a configuration: ask it questions about folders.
pub struct Rlm {
    root: Arc<dyn LanguageModel>,
    sub: Arc<dyn LanguageModel>,
    config: RlmConfig,
    /// 0 for a top-level run; a run started by `rlm_query` is one deeper than its parent.
    depth: usize,
}

/// What a run works over.
struct Input {
    /// What the root model is told about the context.
    description: String,
    documents: Vec<(String, String)>,
    /// Page layouts by path (paged documents only matter).
    layouts: std::collections::HashMap<String, quarry_index::Layout>,
    /// `context` is one `str` rather than a list of documents.
    text: bool,
    /// How the first turn is asked to start.
    first_step: &'static str,
    /// The folder holds records (`records()` parses most of its lines).
    records: bool,
}

/// The first turn's instruction. Worded as a way in, never "you have not seen the documents":
/// told that, the 1.5B model wrote "# No documents yet" as its block on 4 of 20 S-NIAH tasks.
const FIRST_STEP: &str = "Write a ```repl block that starts looking, for example by grep for words from the question.";
/// For Python source: the model reaches for grep out of habit and counts mentions, not definitions.
/// Not worded so it reads as code: after "starts looking: for a question about ..." the 1.5B
/// model wrote the sentence on as its block (it starts with `for`).
const FIRST_STEP_PYTHON: &str = "Write a ```repl block that starts looking. Use symbols() or imports() when the question is about definitions, classes, methods or imports, and grep for words from the question otherwise.";
/// For records (see `RecordShape`): grep finds words, and what these questions need (a label, a
/// count per field value) is in no word; the 1.5B model grepped for the label's name first.
const FIRST_STEP_RECORDS: &str = "Write a ```repl block that loads the records with records() and prints how many there are and two of them, to see their fields.";
/// For records whose question says they must be judged, with the first turn held to
/// [`JUDGE_RECORDS_GRAMMAR`]: the step names the calls the grammar allows.
const FIRST_STEP_JUDGE_RECORDS: &str = "Write a ```repl block that labels every record with count_labels(labels) or label_records(labels), with the labels the question lists, and prints what the question asks for.";

impl Rlm {
    pub fn new(root: Arc<dyn LanguageModel>, sub: Arc<dyn LanguageModel>, config: RlmConfig) -> Rlm {
        Rlm { root, sub, config, depth: 0 }
    }

    /// A run started by `rlm_query` from a run at `parent_depth`.
    pub(crate) fn child(
        root: Arc<dyn LanguageModel>,
        sub: Arc<dyn LanguageModel>,
        config: RlmConfig,
        parent_depth: usize,
    ) -> Rlm {
        Rlm { root, sub, config, depth: parent_depth + 1 }
    }

    /// Answers `question` about `folder`. Events go to `on_event` as they happen; setting
    /// `cancel` stops the run at the next model delta or between code blocks (an execution
    /// already running finishes first, bounded by the sandbox's timeout).
    ///
    /// Must be called inside a tokio runtime: the REPL lives on its own thread and sub-calls
    /// block on the runtime from the REPL's host-call threads.
    pub async fn run<F>(&self, folder: &Folder, question: &str, cancel: CancelToken, on_event: F) -> Result<RunResult>
    where
        F: FnMut(&Event) + Send,
    {
        let summary = FolderSummary::of(folder);
        let input = Input {
            description: summary.describe(self.config.max_listed_files),
            documents: folder.documents().iter().map(|d| (d.path.clone(), d.text.clone())).collect(),
            layouts: folder.entries().map(|(d, l)| (d.path.clone(), l.clone())).collect(),
            text: false,
            records: summary.records.is_some(),
            first_step: match (&summary.records, summary.has_python()) {
                (Some(_), _) if self.config.judge_first && needs_judgement(question) => FIRST_STEP_JUDGE_RECORDS,
                (Some(_), _) => FIRST_STEP_RECORDS,
                (None, true) => FIRST_STEP_PYTHON,
                (None, false) => FIRST_STEP,
            },
        };
        self.run_on(input, question, cancel, on_event).await
    }

    /// Answers `question` about one text, bound to `context` as a `str` (a pasted text, or the
    /// piece of context a parent run hands to `rlm_query`).
    pub async fn run_text<F>(&self, text: String, question: &str, cancel: CancelToken, on_event: F) -> Result<RunResult>
    where
        F: FnMut(&Event) + Send,
    {
        let chars = text.chars().count();
        let input = Input {
            description: format!(
                "The context is one text (a Python str), {chars} characters (about {} tokens). grep and read see it as the document \"context\".\n",
                chars / 4
            ),
            documents: vec![("context".into(), text)],
            layouts: Default::default(),
            text: true,
            first_step: FIRST_STEP,
            records: false,
        };
        self.run_on(input, question, cancel, on_event).await
    }

    async fn run_on<F>(&self, input: Input, question: &str, cancel: CancelToken, mut on_event: F) -> Result<RunResult>
    where
        F: FnMut(&Event) + Send,
    {
        let question = question.trim();
        if question.is_empty() {
            return Err(Error::EmptyQuestion);
        }
        let started = Instant::now();
        let budget = self.config.budget.clone();
        let Input { description, documents, layouts, text, first_step, records } = input;
        on_event(&Event::RunStarted {
            question: question.into(),
            root_model: self.root.name().into(),
            sub_model: self.sub.name().into(),
            context: description.clone(),
        });

        let (tx, rx) = unbounded_channel();
        let stats = Arc::new(SubCallStats::default());
        let recursion = Recursion { root: self.root.clone(), config: self.config.clone(), depth: self.depth };
        let deadline = budget.wall_clock.map(|w| started + w);
        let host = Arc::new(
            RunHost::new(
                tokio::runtime::Handle::current(),
                self.sub.clone(),
                documents.clone(),
                budget.max_sub_calls,
                self.config.sub_max_tokens,
                stats.clone(),
                cancel.clone(),
                tx,
            )
            .with_layouts(layouts.clone())
            .with_recursion(recursion)
            .with_deadline(deadline)
            .with_sub_grammars(self.config.sub_accepts_grammar)
            .with_labeller(self.root.clone(), self.config.labeller),
        );
        let context = if text {
            Context::Text(documents.into_iter().next().map(|(_, t)| t).unwrap_or_default())
        } else {
            Context::Documents(
                documents
                    .into_iter()
                    .map(|(path, text)| {
                        let pages = layouts.get(&path).map(crate::context::page_marks).unwrap_or_default();
                        ContextDocument { path, text, pages }
                    })
                    .collect(),
            )
        };
        let sandbox = self.config.sandbox.clone();
        let corpus = host.clone();
        let repl = ReplThread::start(sandbox, host, context).await?;

        let mut run = Run {
            repl: Some(repl),
            rx,
            feedback_chars: self.config.feedback_chars,
            setup: None,
            messages: vec![
                ChatMessage::system(SYSTEM_PROMPT.trim()),
                ChatMessage::user(format!(
                    "{description}\nQuestion: {question}\n\n{first_step} Do not answer before you have seen what your code prints."
                )),
            ],
            root_usage: Usage::default(),
        };
        let mut trajectory = Trajectory {
            metadata: Metadata {
                question: question.into(),
                root_model: self.root.name().into(),
                sub_model: self.sub.name().into(),
                budget: budget.clone(),
                context: description,
            },
            iterations: Vec::new(),
        };

        // The labels the question lists go to the REPL, where `count_labels()` and
        // `label_records()` default to them and put a miswritten list right.
        let labels = listed_labels(question);
        if !labels.is_empty() {
            let literal = serde_json::to_string(&labels).expect("strings serialize");
            run.setup = Some(format!("_set_question_labels({literal})"));
            run.run_setup().await?;
        }
        let mut consecutive_errors = 0usize;
        let mut no_code_last_turn = false;
        // The grammar the next turn must follow: the first when the question needs judging,
        // the one after a send-back.
        let mut sent_back_grammar: Option<String> =
            (self.config.judge_first && needs_judgement(question)).then(|| judge_grammar_for(records, &labels));
        let mut resample_next = false;
        let mut answer: Option<(String, AnswerSource)> = None;
        let mut sent_back: HashSet<Premature> = HashSet::new();
        // The failed code an echoed error has had repaired: once each.
        let mut repaired: HashSet<String> = HashSet::new();
        let stop = loop {
            let sub_usage = *stats.usage.lock().expect("usage lock");
            if cancel.is_cancelled() {
                break StopReason::Cancelled;
            }
            if stats.exhausted.load(Ordering::SeqCst) {
                break StopReason::MaxSubCalls;
            }
            if consecutive_errors >= budget.max_consecutive_errors {
                break StopReason::ConsecutiveErrors;
            }
            if trajectory.iterations.len() >= budget.max_iterations {
                break StopReason::MaxIterations;
            }
            if budget.max_tokens.is_some_and(|m| run.root_usage.total() + sub_usage.total() >= m) {
                break StopReason::MaxTokens;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break StopReason::WallClock;
            }

            let index = trajectory.iterations.len() + 1;
            let turn_started = Instant::now();
            on_event(&Event::IterationStarted { index });
            // After a reply with neither code nor an answer (small models echo the last message
            // back), the next turn may only be code: a grammar is the one instruction they cannot
            // ignore.
            let grammar = match (self.config.accepts_grammar, self.config.root_grammar, no_code_last_turn) {
                (false, _, _) => None,
                (true, _, _) if sent_back_grammar.is_some() => sent_back_grammar.take(),
                (true, true, _) => Some(ROOT_GRAMMAR.to_string()),
                (true, false, true) => Some(CODE_GRAMMAR.to_string()),
                (true, false, false) => None,
            };
            // Greedy decoding repeats itself; after the model has repeated a block and said it has
            // no answer, one sampled turn breaks the loop.
            let sampling = if std::mem::take(&mut resample_next) {
                Sampling {
                    temperature: 0.7,
                    seed: self.config.sampling.seed.wrapping_add(index as u32),
                    ..self.config.sampling.clone()
                }
            } else {
                self.config.sampling.clone()
            };
            let completion = run.root_turn(self, grammar.as_deref(), sampling, &cancel, &mut on_event).await?;
            if completion.finish_reason == FinishReason::Cancelled || cancel.is_cancelled() {
                break StopReason::Cancelled;
            }
            let text = close_stopped_block(&completion, self.config.stop_at_block_end);
            let (text, mut reply, mut defect) = cut_to_what_runs(text, completion.finish_reason);
            // A block of comments alone is a plan written as code: nothing to run.
            if !reply.blocks.is_empty() && reply.blocks.iter().all(|b| comment_only(&b.code)) {
                reply.blocks.clear();
                if defect == Defect::None {
                    defect = Defect::CommentsOnly;
                }
            }
            // Nothing ran and greedy decoding would write the same reply again.
            if matches!(defect, Defect::Cut { salvaged: false }) {
                resample_next = true;
            }
            run.messages.push(ChatMessage::assistant(text.clone()));

            // A reply that is the last error message, copied (as prose, as a block, or as
            // prints of it): the 1.5B root, shown a traceback, wrote it back turn after turn until
            // the error limit ended the run (3 of 5 dev OOLONG runs at 8K, stop 23; 3 of 4
            // paraphrased ones, stop 26). What it meant was "fix that", so the code that failed
            // gets the repair round a failing block gets, once, and the fix runs in its place.
            let mut repaired_failure = None;
            // New code after an echoed line ("Error: ... so I fix it") is the model's own fix.
            let prose_echo = echoes_error(text.split("```").next().unwrap_or_default());
            let echo = reply.final_answer.is_none()
                && match reply.blocks.first() {
                    None => prose_echo,
                    Some(b) => {
                        echoes_error(&b.code)
                            || (prose_echo
                                && repeats_failed_turn(&reply.blocks, last_that_ran(&trajectory.iterations)).is_some())
                    }
                };
            if echo {
                let failure = last_failure(&trajectory.iterations).filter(|(code, _)| !repaired.contains(code));
                let fixed = match failure {
                    Some((code, failed)) if self.config.repair_syntax => {
                        repaired.insert(code.clone());
                        run.repair(self, &code, &failed, &cancel, &mut on_event).await?.map(|fix| (code, fix))
                    }
                    _ => None,
                };
                on_event(&Event::Notice {
                    message: format!(
                        "the root model wrote an error message as its reply; {}",
                        if fixed.is_some() { "the code that failed was repaired instead" } else { "nothing ran" }
                    ),
                });
                match fixed {
                    Some((code, fix)) => {
                        reply.blocks = vec![CodeBlock { lang: "repl".into(), code: fix }];
                        repaired_failure = Some(code);
                    }
                    None => {
                        reply.blocks.clear();
                        defect = Defect::EchoedError;
                    }
                }
            }

            // A small model that has seen its answer often writes the same code again rather
            // than FINAL (greedy decoding then repeats it to the last turn: the 1.5B model ran
            // one grep 12 times with the needle in its output). Running it again shows nothing
            // new, so instead the model is asked, without code, whether the output answers.
            // A FINAL beside the repeated code was written after seeing that code's output, so
            // unlike a FINAL beside new code it is taken.
            if repeats_last_turn(&reply.blocks, last_that_ran(&trajectory.iterations)) {
                let probe = match &reply.final_answer {
                    Some(f) => Some(f.clone()),
                    None => run.answer_probe(self, &cancel, &mut on_event).await?,
                };
                if cancel.is_cancelled() {
                    break StopReason::Cancelled;
                }
                answer = match probe {
                    Some(FinalAnswer::Text(t)) => Some((t, AnswerSource::Prose)),
                    Some(FinalAnswer::Var(name)) => {
                        run.final_var(&name, &mut on_event).await?.final_answer.map(|t| (t, AnswerSource::Prose))
                    }
                    None => None,
                };
                let premature = self.judge_final(question, &answer, &trajectory.iterations, &[], &stats);
                let turns = trajectory.iterations.len();
                let refused = self.send_back(premature, &mut sent_back, turns, &budget, deadline, &mut on_event);
                trajectory.iterations.push(Iteration {
                    index,
                    response: text.clone(),
                    code_blocks: Vec::new(),
                    final_answer: answer.as_ref().filter(|_| !refused).map(|(t, _)| t.clone()),
                    premature: premature.map(|p| p.name().to_string()),
                    usage: completion.usage,
                    seconds: turn_started.elapsed().as_secs_f64(),
                });
                if refused {
                    answer = None;
                    sent_back_grammar = premature.and_then(|p| grammar_after(p, records, &labels));
                    let reason = premature.map(Premature::feedback).unwrap_or_default();
                    run.messages
                        .push(ChatMessage::user(format!("Your FINAL did not count: {reason}.\nQuestion: {question}")));
                    continue;
                }
                if answer.is_some() {
                    break StopReason::Final;
                }
                consecutive_errors += 1;
                resample_next = true;
                run.messages.push(ChatMessage::user(format!(
                    "You wrote the same code as last time; running it again shows nothing new. Write different code that finds what is missing.\nQuestion: {question}"
                )));
                continue;
            }

            // The same code as a turn that failed fails the same way: greedy decoding wrote one
            // crashing block three turns running (a `ValueError` each time) and ended the run.
            if let Some(error) = repeats_failed_turn(&reply.blocks, last_that_ran(&trajectory.iterations)) {
                on_event(&Event::Notice {
                    message: "the root model repeated code that failed; it was not run again".into(),
                });
                trajectory.iterations.push(Iteration {
                    index,
                    response: text.clone(),
                    code_blocks: Vec::new(),
                    final_answer: None,
                    premature: None,
                    usage: completion.usage,
                    seconds: turn_started.elapsed().as_secs_f64(),
                });
                consecutive_errors += 1;
                resample_next = true;
                run.messages.push(ChatMessage::user(format!(
                    "That is the code that failed last time with:\n{}\nIt would fail the same way, so it did not run. Change the code where the error points.\nQuestion: {question}",
                    truncate(&error, 600)
                )));
                continue;
            }

            let mut runs: Vec<BlockRun> = Vec::new();
            for (i, block) in reply.blocks.iter().enumerate() {
                if cancel.is_cancelled() {
                    break;
                }
                on_event(&Event::CodeBlock { iteration: index, index: i + 1, code: block.code.clone() });
                let mut block = block.clone();
                let mut result = run.execute(block.code.clone(), &mut on_event).await?;
                let mut repaired_from = if i == 0 { repaired_failure.take() } else { None };
                // `FINAL(The code is 7391.)` alone in a block is an answer written in a code fence,
                // not Python: take its text, as a FINAL line in prose would be.
                if is_syntax_error(&result) {
                    if let Some(text) = bare_final(&block.code) {
                        on_event(&Event::ReplResult { iteration: index, index: i + 1, result: result.clone() });
                        runs.push(BlockRun { block, result, repaired_from });
                        answer = Some((text, AnswerSource::Prose));
                        break;
                    }
                }
                if self.config.repair_syntax
                    && repaired_from.is_none()
                    && (is_syntax_error(&result) || names_its_fix(&result))
                {
                    if let Some(fixed) = run.repair(self, &block.code, &result, &cancel, &mut on_event).await? {
                        let fixed_result = run.execute(fixed.clone(), &mut on_event).await?;
                        // A "fix" that does not compile, of code that did, is worse than the
                        // error it fixed: the 1.5B turned `importjsonl = label_records(...)`
                        // (a KeyError further down) into `import jsonl = ...` and then echoed
                        // the SyntaxError (para-oolong-8k-000, stop 26). Nothing of it ran.
                        if !is_syntax_error(&fixed_result) || is_syntax_error(&result) {
                            on_event(&Event::CodeBlock { iteration: index, index: i + 1, code: fixed.clone() });
                            repaired_from = Some(std::mem::replace(&mut block.code, fixed));
                            result = fixed_result;
                        }
                    }
                }
                on_event(&Event::ReplResult { iteration: index, index: i + 1, result: result.clone() });
                let done = result.final_answer.clone();
                runs.push(BlockRun { block, result, repaired_from });
                if let Some(text) = done {
                    answer = Some((text, AnswerSource::Code));
                    break;
                }
            }
            let code_failed = !runs.is_empty() && runs.iter().any(|r| r.result.error.is_some());
            // A FINAL(text) written beside code was written before the code's output was seen:
            // the reference takes it, but small models fill it with a guess (the 0.5B model
            // answered "2760", a file size from the listing, beside the grep that would have
            // found the code). So it waits for the output. FINAL_VAR beside code names a value
            // the code computed, so it is taken unless that code failed.
            let mut final_note = None;
            if answer.is_none() && !code_failed {
                match &reply.final_answer {
                    Some(FinalAnswer::Text(_)) if !reply.blocks.is_empty() => {
                        final_note = Some(
                            "it was written before you saw your code's output. If the output above confirms it, write FINAL(answer) again, alone"
                                .to_string(),
                        )
                    }
                    Some(FinalAnswer::Text(t)) => answer = Some((t.clone(), AnswerSource::Prose)),
                    Some(FinalAnswer::Var(name)) => {
                        let r = run.final_var(name, &mut on_event).await?;
                        match r.final_answer {
                            Some(t) => answer = Some((t, AnswerSource::Prose)),
                            None => final_note = Some(r.error.unwrap_or_else(|| format!("FINAL_VAR({name}) found nothing"))),
                        }
                    }
                    None => {}
                }
            }
            if answer.is_none() && !runs.is_empty() && has_answer_dict(runs.last().map(|r| &r.result)) {
                if let Some(t) = run.answer_variable(&mut on_event).await? {
                    answer = Some((t, AnswerSource::AnswerVariable));
                }
            }

            let premature = self.judge_final(question, &answer, &trajectory.iterations, &runs, &stats);
            let turns = trajectory.iterations.len();
            if self.send_back(premature, &mut sent_back, turns, &budget, deadline, &mut on_event) {
                answer = None;
                sent_back_grammar = premature.and_then(|p| grammar_after(p, records, &labels));
                final_note = premature.map(|p| p.feedback().to_string());
            }
            trajectory.iterations.push(Iteration {
                index,
                response: text.clone(),
                code_blocks: runs.clone(),
                final_answer: answer.as_ref().map(|(t, _)| t.clone()),
                premature: premature.map(|p| p.name().to_string()),
                usage: completion.usage,
                seconds: turn_started.elapsed().as_secs_f64(),
            });
            on_event(&Event::Usage { root: run.root_usage, sub: *stats.usage.lock().expect("usage lock") });
            if answer.is_some() {
                break StopReason::Final;
            }

            if code_failed && reply.final_answer.is_some() && answer.is_none() {
                final_note = Some("it was ignored because your code failed; fix the code first".into());
            }
            let failed = runs.is_empty() || runs.iter().all(|r| r.result.error.is_some());
            consecutive_errors = if failed { consecutive_errors + 1 } else { 0 };
            no_code_last_turn = reply.blocks.is_empty() && reply.final_answer.is_none();
            let mut feedback =
                feedback(&reply.blocks, &runs, defect, final_note.as_deref(), question, run.feedback_chars);
            for r in &runs {
                feedback.push_str(&absent_words_note(r, |s| corpus.occurs(s)));
            }
            for note in corpus.take_notes() {
                feedback.push_str(&note);
            }
            // Small models loop on one block; say so, since seeing the same output again does
            // not make them move on.
            let previous = trajectory.iterations.iter().rev().nth(1).map(|it| &it.code_blocks);
            if !runs.is_empty()
                && previous.is_some_and(|p| p.iter().map(|r| &r.block.code).eq(runs.iter().map(|r| &r.block.code)))
            {
                feedback.push_str("\nYou ran exactly the same code last time. If the output answers the question, write FINAL(your answer) now; otherwise try different code.");
            }
            run.messages.push(ChatMessage::user(feedback));
        };

        if stop != StopReason::Final && stop != StopReason::Cancelled {
            answer = run.forced_answer(self, stop, question, &cancel, &mut on_event).await?;
        }
        if let Some((text, _)) = &mut answer {
            let outputs = outputs(trajectory.iterations.iter().flat_map(|it| it.code_blocks.iter()));
            if copied_line(question, text, &outputs) && !cancel.is_cancelled() {
                if let Some(value) = self.cut_to_value(question, text).await {
                    on_event(&Event::Notice {
                        message: "the answer was a copied line; it was cut to the value the question asks for".into(),
                    });
                    *text = value;
                }
            }
        }
        if let Some((text, source)) = &answer {
            on_event(&Event::Answer { text: text.clone(), source: *source });
        }
        let sub_usage = *stats.usage.lock().expect("usage lock");
        let mut usage = run.root_usage;
        usage += sub_usage;
        let seconds = started.elapsed().as_secs_f64();
        let iterations = trajectory.iterations.len();
        let sub_calls = stats.served.load(Ordering::SeqCst);
        on_event(&Event::Final { stop_reason: stop, iterations, sub_calls, seconds });
        if let Some(repl) = run.repl.take() {
            repl.shutdown().await;
        }
        let sources = std::mem::take(&mut *stats.sources.lock().expect("sources lock"));
        Ok(RunResult {
            answer: answer.map(|(t, _)| t),
            stop_reason: stop,
            iterations,
            sub_calls,
            usage,
            root_usage: run.root_usage,
            sub_usage,
            seconds,
            trajectory,
            sources,
        })
    }
}

impl Rlm {
    /// Whether the answer this turn gave, if any, comes before its evidence.
    fn judge_final(
        &self,
        question: &str,
        answer: &Option<(String, AnswerSource)>,
        iterations: &[Iteration],
        runs: &[BlockRun],
        stats: &SubCallStats,
    ) -> Option<Premature> {
        let (text, _) = answer.as_ref()?;
        let served = stats.served.load(Ordering::SeqCst);
        premature_final(question, text, iterations, runs, served, examples_of(SYSTEM_PROMPT))
    }

    /// One short call that cuts a copied line down to the value the question asks for, with the
    /// line's references kept; `None` (keep the line) when the reply is not a part of the line,
    /// so a cut can drop words but never make a value up.
    async fn cut_to_value(&self, question: &str, line: &str) -> Option<String> {
        let mut request = ChatRequest {
            max_tokens: Some(48),
            sampling: Sampling { temperature: 0.0, ..self.config.sampling.clone() },
            ..ChatRequest::new(vec![ChatMessage::user(format!("{CUT_PROMPT}\nQuestion: {question}\nText: {line}"))])
        };
        if self.config.accepts_grammar {
            request.constraint.grammar = Some(CUT_GRAMMAR.into());
        }
        let reply = self.root.chat(&request).await.ok()?;
        let value = reply.text.trim().trim_matches(|c: char| c == '"' || c == '`' || c == '.').trim();
        let inside = line.to_lowercase().contains(&value.to_lowercase());
        if value.is_empty() || !inside || value.chars().count() * 2 > line.chars().count() {
            return None;
        }
        let refs = references(line);
        Some(if refs.is_empty() { value.to_string() } else { format!("{value} ({})", refs.join(", ")) })
    }

    /// Whether to send a premature answer back: checking is on, this reason has not been sent
    /// back before in the run (a model that answers the same way twice is not asked a third
    /// time), and there is room for another turn after the `turns` taken.
    fn send_back<F: FnMut(&Event)>(
        &self,
        premature: Option<Premature>,
        sent_back: &mut HashSet<Premature>,
        turns: usize,
        budget: &Budget,
        deadline: Option<Instant>,
        on_event: &mut F,
    ) -> bool {
        let Some(p) = premature else { return false };
        let room = turns + 1 < budget.max_iterations
            && deadline.is_none_or(|d| Instant::now() + std::time::Duration::from_secs(20) < d);
        if !self.config.check_final || !room || !sent_back.insert(p) {
            return false;
        }
        on_event(&Event::Notice {
            message: format!("the root model answered before its evidence ({}); it was sent back to work on", p.name()),
        });
        true
    }
}

/// The state one run threads through its turns.
struct Run {
    repl: Option<ReplThread>,
    rx: UnboundedReceiver<Event>,
    /// Code the host runs before the first turn, and again after the REPL restarts (which
    /// loses every variable): what the loop read off the question for the helpers.
    setup: Option<String>,
    feedback_chars: usize,
    messages: Vec<ChatMessage>,
    root_usage: Usage,
}

impl Run {
    async fn root_turn<F: FnMut(&Event) + Send>(
        &mut self,
        rlm: &Rlm,
        grammar: Option<&str>,
        sampling: Sampling,
        cancel: &CancelToken,
        on_event: &mut F,
    ) -> Result<Completion> {
        let mut request = ChatRequest::new(self.messages.clone());
        request.max_tokens = rlm.config.root_max_tokens;
        request.sampling = sampling;
        if rlm.config.stop_at_block_end {
            request.stop = vec![BLOCK_END.into()];
        }
        request.constraint.grammar = grammar.map(String::from);
        self.ask_root_guarded(rlm, &request, true, cancel, on_event).await
    }

    /// Every root-model call — turns, answer probes, repairs — goes through here: streamed as
    /// events, its tokens counted against the run, a failure reported before it ends the run.
    async fn ask_root<F: FnMut(&Event) + Send>(
        &mut self,
        rlm: &Rlm,
        request: &ChatRequest,
        cancel: &CancelToken,
        on_event: &mut F,
    ) -> Result<Completion> {
        self.ask_root_guarded(rlm, request, false, cancel, on_event).await
    }

    /// [`Run::ask_root`], optionally cutting a reply that loops: the cut reply comes back as
    /// one that hit its length limit, which is what it is to the loop.
    async fn ask_root_guarded<F: FnMut(&Event) + Send>(
        &mut self,
        rlm: &Rlm,
        request: &ChatRequest,
        guarded: bool,
        cancel: &CancelToken,
        on_event: &mut F,
    ) -> Result<Completion> {
        let mut sink = Stream { on_event, cancel, guard: guarded.then(RepetitionGuard::default) };
        let result = rlm.root.chat_stream(request, &mut sink).await;
        let looped = sink.guard.is_some_and(|g| g.tripped);
        match result {
            Ok(mut c) => {
                self.root_usage += c.usage;
                if looped && c.finish_reason == FinishReason::Cancelled && !cancel.is_cancelled() {
                    on_event(&Event::Notice {
                        message: "the root model repeated itself; its turn was cut there".into(),
                    });
                    c.finish_reason = FinishReason::Length;
                }
                Ok(c)
            }
            Err(e) => {
                (sink.on_event)(&Event::Error { message: format!("the root model failed: {e}") });
                Err(e.into())
            }
        }
    }

    /// Runs `code` on the REPL's thread, forwarding sub-call events while it runs.
    async fn execute<F: FnMut(&Event) + Send>(&mut self, code: String, on_event: &mut F) -> Result<ReplResult> {
        let repl = self.repl.as_ref().ok_or_else(|| Error::Worker("the REPL is gone".into()))?;
        let mut pending = repl.execute(code)?;
        let joined = loop {
            tokio::select! {
                joined = &mut pending => break joined,
                Some(ev) = self.rx.recv() => on_event(&ev),
            }
        };
        let result = joined.map_err(|_| Error::Worker("the REPL thread died".into()))?;
        while let Ok(ev) = self.rx.try_recv() {
            on_event(&ev);
        }
        let result = result?;
        if result.restarted {
            self.run_setup().await?;
        }
        Ok(result)
    }

    /// Runs [`Run::setup`], which prints nothing and calls no host function.
    async fn run_setup(&mut self) -> Result<()> {
        let (Some(repl), Some(code)) = (self.repl.as_ref(), self.setup.clone()) else {
            return Ok(());
        };
        let result = repl.execute(code)?.await.map_err(|_| Error::Worker("the REPL thread died".into()))??;
        match result.error {
            Some(e) => Err(Error::Worker(format!("the REPL's setup failed: {e}"))),
            None => Ok(()),
        }
    }

    async fn final_var<F: FnMut(&Event) + Send>(&mut self, name: &str, on_event: &mut F) -> Result<ReplResult> {
        // A JSON string literal is a valid Python string literal for any name a model writes.
        let literal = serde_json::to_string(name).expect("strings serialize");
        self.execute(format!("FINAL_VAR({literal})"), on_event).await
    }

    /// Asks, with code ruled out, whether what the model has seen answers the question. An
    /// answer stays in the conversation; a "no" is taken out of it.
    async fn answer_probe<F: FnMut(&Event) + Send>(
        &mut self,
        rlm: &Rlm,
        cancel: &CancelToken,
        on_event: &mut F,
    ) -> Result<Option<FinalAnswer>> {
        self.messages.push(ChatMessage::user(
            "You wrote the same code as last time. Its output is above, and running it again would show the same. Do not write code now. If that output answers the question, reply with one line: FINAL(your answer). If it does not, reply: NOT FOUND",
        ));
        let mut request = ChatRequest::new(self.messages.clone());
        request.max_tokens = Some(256);
        request.sampling = rlm.config.sampling.clone();
        request.stop = vec!["```".into()];
        request.constraint.grammar =
            (rlm.config.accepts_grammar && rlm.config.root_grammar).then(|| PROBE_GRAMMAR.to_string());
        let c = self.ask_root(rlm, &request, cancel, on_event).await?;
        let answer = parse_reply(&c.text).final_answer;
        if answer.is_some() {
            self.messages.push(ChatMessage::assistant(c.text.clone()));
        } else {
            // A "NOT FOUND" left in the conversation gets copied: the 1.5B model later gave
            // it as its final answer with the needle in view.
            self.messages.pop();
        }
        Ok(answer)
    }

    /// One repair round for a block that does not compile: a fresh request holding only the code
    /// and the error (the conversation would invite the model to rewrite its plan too). Returns
    /// the corrected code, or `None` if the reply had no block or the same code.
    async fn repair<F: FnMut(&Event) + Send>(
        &mut self,
        rlm: &Rlm,
        code: &str,
        failed: &ReplResult,
        cancel: &CancelToken,
        on_event: &mut F,
    ) -> Result<Option<String>> {
        let error = failed.error.as_deref().unwrap_or_default();
        let (system, fails, error) = if is_syntax_error(failed) {
            ("You fix syntax errors in Python code.", "fails to compile with", error)
        } else {
            // A traceback's last line carries the fix; its frames are noise to a small model.
            ("You fix errors in Python code.", "fails with", error.lines().last().unwrap_or(error))
        };
        let mut request = ChatRequest::new(vec![
            ChatMessage::system(format!(
                "{system} Reply with the corrected code in one ```repl block and nothing else. Change only what the error needs."
            )),
            ChatMessage::user(format!("This code:\n```repl\n{code}\n```\n{fails}:\n{error}\n\nReply with the corrected code.")),
        ]);
        request.max_tokens = rlm.config.root_max_tokens;
        request.sampling = rlm.config.sampling.clone();
        let c = self.ask_root(rlm, &request, cancel, on_event).await?;
        let fixed = parse_reply(&c.text).blocks.into_iter().next().map(|b| b.code);
        Ok(fixed.filter(|f| f.trim() != code.trim() && !f.trim().is_empty()))
    }

    /// The `answer = {"content": ..., "ready": True}` convention: read only when `ready` is true.
    async fn answer_variable<F: FnMut(&Event) + Send>(&mut self, on_event: &mut F) -> Result<Option<String>> {
        let r = self
            .execute(
                "if isinstance(answer, dict) and answer.get('ready') is True:\n    FINAL(answer.get('content', ''))"
                    .into(),
                on_event,
            )
            .await?;
        Ok(r.final_answer)
    }

    /// The last turn after a limit: no code runs, whatever the model says is the answer.
    async fn forced_answer<F: FnMut(&Event) + Send>(
        &mut self,
        rlm: &Rlm,
        stop: StopReason,
        question: &str,
        cancel: &CancelToken,
        on_event: &mut F,
    ) -> Result<Option<(String, AnswerSource)>> {
        self.messages.push(ChatMessage::user(format!(
            "Stop: {}. No more code will run. Answer the question now from what you have found so far, citing the path:line of each fact as the output showed it.\nQuestion: {question}\nReply with one line: FINAL(your answer)",
            stop.describe()
        )));
        let grammar = (rlm.config.accepts_grammar && rlm.config.root_grammar).then_some(FINAL_GRAMMAR);
        let c = self.root_turn(rlm, grammar, rlm.config.sampling.clone(), cancel, on_event).await?;
        let reply = parse_reply(&c.text);
        let text = match reply.final_answer {
            Some(FinalAnswer::Text(t)) => t,
            Some(FinalAnswer::Var(name)) => match self.final_var(&name, on_event).await?.final_answer {
                Some(t) => t,
                None => c.text.trim().to_string(),
            },
            None => c.text.trim().to_string(),
        };
        Ok(Some((text, AnswerSource::Forced)))
    }
}

/// Streams root deltas out as events and lets the cancel flag stop generation (the one-pass
/// modes use it too).
pub(crate) struct Stream<'a, F> {
    pub(crate) on_event: &'a mut F,
    pub(crate) cancel: &'a CancelToken,
    /// Cuts a reply that has fallen into a loop (root turns only).
    pub(crate) guard: Option<RepetitionGuard>,
}

impl<F: FnMut(&Event) + Send> DeltaSink for Stream<'_, F> {
    fn delta(&mut self, text: &str) -> bool {
        (self.on_event)(&Event::ModelDelta { text: text.into() });
        let looping = self.guard.as_mut().is_some_and(|g| !g.push(text));
        !looping && !self.cancel.is_cancelled()
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// Watches a streamed reply for the loop small models fall into: the 1.5B model wrote the same
/// four comment lines over and over until the turn's token limit (two minutes here), and since
/// greedy decoding gives the same reply to the same conversation, three turns running.
#[derive(Debug, Default)]
pub(crate) struct RepetitionGuard {
    line: String,
    seen: std::collections::HashMap<String, usize>,
    tripped: bool,
}

impl RepetitionGuard {
    /// A comment line may appear this often; the next one ends the reply.
    const COMMENT_REPEATS: usize = 2;
    /// Any other line: code repeats lines legitimately (a print loop after each of four greps).
    const LINE_REPEATS: usize = 5;

    /// Takes the next piece of the reply; false once it is looping.
    fn push(&mut self, text: &str) -> bool {
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
fn salvage_cut_block(code: &str) -> (String, bool) {
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
enum Defect {
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
fn cut_to_what_runs(text: String, finish: FinishReason) -> (String, crate::parse::Reply, Defect) {
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
fn comment_only(code: &str) -> bool {
    code.lines().all(|l| l.trim().is_empty() || l.trim().starts_with('#'))
}

/// The stop string that ends a turn at a closing fence (an opening one has a language tag).
const BLOCK_END: &str = "\n```\n";

/// Endpoints drop the stop string from the text (OpenAI's rule), which leaves the block the
/// stop string closed unterminated; put the fence back so the block runs.
fn close_stopped_block(c: &Completion, stopping: bool) -> String {
    if stopping && c.finish_reason == FinishReason::Stop && parse_reply(&c.text).unterminated() {
        format!("{}\n```", c.text)
    } else {
        c.text.clone()
    }
}

/// `blocks` are, block for block, the code in `ran` (whitespace at the ends aside).
fn same_code<'a>(ran: impl Iterator<Item = &'a str>, blocks: &[CodeBlock]) -> bool {
    !blocks.is_empty() && ran.map(str::trim).eq(blocks.iter().map(|b| b.code.trim()))
}

/// The last turn whose code ran: a turn that repeated code was not run, and the code after it
/// is compared with what did run (the 1.5B wrote one failing block three turns running; the
/// third, compared with the skipped second, ran and failed again).
fn last_that_ran(iterations: &[Iteration]) -> Option<&Iteration> {
    iterations.iter().rev().find(|it| !it.code_blocks.is_empty())
}

/// The same code as the last turn that ran (see `last_that_ran`), which ran without error.
fn repeats_last_turn(blocks: &[CodeBlock], last: Option<&Iteration>) -> bool {
    let Some(last) = last else {
        return false;
    };
    last.code_blocks.iter().all(|r| r.result.error.is_none())
        && same_code(last.code_blocks.iter().map(|r| r.block.code.as_str()), blocks)
}

/// The error of the last turn, when it failed and `blocks` are its code again (as written or
/// as repaired).
fn repeats_failed_turn(blocks: &[CodeBlock], last: Option<&Iteration>) -> Option<String> {
    let last = last?;
    let error = last.code_blocks.iter().find_map(|r| r.result.error.clone())?;
    let as_run = last.code_blocks.iter().map(|r| r.block.code.as_str());
    let as_written = last.code_blocks.iter().map(|r| r.repaired_from.as_deref().unwrap_or(&r.block.code));
    (same_code(as_run, blocks) || same_code(as_written, blocks)).then_some(error)
}

/// A reply or block that is an error message rather than code: its first line (comments aside)
/// is a traceback's header or frame, or an exception line (`ValueError: ...`), which no Python
/// statement starts with, or a `print` of one (the 1.5B, held to code, printed the traceback
/// line by line: para-oolong-8k-002, stop 26).
fn echoes_error(code: &str) -> bool {
    static EXCEPTION: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"^(?:print\(\s*f?["'])?(?:Traceback \(most recent call last\)|File "[^"]*", line \d+|Error: |(?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Z][A-Za-z]*(?:Error|Exception|Interrupt|Exit): )"#)
            .expect("a valid pattern")
    });
    code.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).is_some_and(|l| EXCEPTION.is_match(l))
}

/// The code and result of the last block that failed, in the last turn whose code ran.
fn last_failure(iterations: &[Iteration]) -> Option<(String, ReplResult)> {
    let last = last_that_ran(iterations)?;
    let failed = last.code_blocks.iter().find(|r| r.result.error.is_some())?;
    Some((failed.block.code.clone(), failed.result.clone()))
}

/// The text of a block that is one `FINAL(...)` line, comments aside.
fn bare_final(code: &str) -> Option<String> {
    let lines: Vec<&str> = code.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let [line] = lines[..] else {
        return None;
    };
    match parse_reply(line).final_answer {
        Some(FinalAnswer::Text(t)) => Some(t),
        _ => None,
    }
}

/// Nothing of a block that does not compile has run, so repairing it changes no state.
fn is_syntax_error(r: &ReplResult) -> bool {
    r.error
        .as_deref()
        .is_some_and(|e| ["SyntaxError:", "IndentationError:", "TabError:"].iter().any(|p| e.starts_with(p)))
}

/// A runtime error whose message says what to change (the worker's `hint`: the REPL's own
/// hints, Python's "Did you mean", strptime's format mismatch). Given the whole conversation,
/// the 1.5B root echoed such an error back as its reply, turn after turn; asked only to fix the
/// code, it has the one edit to make.
fn names_its_fix(r: &ReplResult) -> bool {
    r.error.is_some() && r.hint.is_some()
}

fn has_answer_dict(last: Option<&ReplResult>) -> bool {
    last.is_some_and(|r| r.variables.iter().any(|v| v.name == "answer" && v.type_name == "dict"))
}

/// The lists, dicts and sets a block left empty: what a search or filter that found nothing
/// leaves behind.
fn empty_collections(r: &ReplResult) -> Vec<&str> {
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
fn absent_words_note(run: &BlockRun, occurs: impl Fn(&str) -> bool) -> String {
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
    format!(
        "`{}` is empty, and {} occurs in none of the documents: filter on words the documents' own lines hold (print a few lines to see them).\n",
        empty.join("`, `"),
        absent.iter().map(|w| format!("{w:?}")).collect::<Vec<_>>().join(", ")
    )
}

/// The next user message: what each block printed, the variables, and a nudge.
fn feedback(
    blocks: &[CodeBlock],
    runs: &[BlockRun],
    defect: Defect,
    final_note: Option<&str>,
    question: &str,
    chars: usize,
) -> String {
    let mut s = String::new();
    match defect {
        Defect::None if blocks.is_empty() && final_note.is_none() => {
            s.push_str("Your reply had no ```repl code block and no FINAL(answer) line, so nothing ran.\n")
        }
        Defect::CommentsOnly => s.push_str("Your ```repl block held only comments, so nothing ran. Write the code.\n"),
        Defect::EchoedError => s.push_str(
            "Your reply was the error message, not new code, so nothing ran. Write the code again with the line the error points to changed.\n",
        ),
        Defect::Cut { salvaged: false } => s.push_str(
            "Your reply was cut off at the turn's length limit before any code, so nothing ran. Write the code first, with at most one line of comment.\n",
        ),
        Defect::Cut { salvaged: true } => s.push_str(
            "Your reply was cut off at the turn's length limit (it went on repeating itself); the code before the cut ran. Keep comments to one line.\n",
        ),
        _ => {}
    }
    for (i, run) in runs.iter().enumerate() {
        let r = &run.result;
        if run.repaired_from.is_some() {
            s.push_str(&format!(
                "Code block {} had an error; it was repaired and run as:\n```repl\n{}\n```\n",
                i + 1,
                run.block.code.trim_end()
            ));
        }
        s.push_str(&format!("Output of code block {}:\n", i + 1));
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
            s.push_str("(no output: nothing was printed. A print inside a loop or an if that shows nothing means nothing matched; use print() to see values)\n");
        }
        let found_nothing = empty_collections(r);
        if r.error.is_none() && r.stdout.trim().is_empty() && !found_nothing.is_empty() {
            s.push_str(&format!(
                "`{}` is empty: nothing matched. The answer may not be written in the documents in those words. Print a few lines of the data to see its form; if each item must be judged (a label, a category), use llm_classify on the items.\n",
                found_nothing.join("`, `")
            ));
        }
        if r.restarted {
            s.push_str("The REPL was restarted: every variable is gone (context is loaded again).\n");
        }
    }
    if blocks.len() > runs.len() {
        s.push_str(&format!("{} later code block(s) did not run.\n", blocks.len() - runs.len()));
    }
    if defect == Defect::Unterminated {
        s.push_str("Your last ```repl block was not closed with a ``` line, so it did not run.\n");
    }
    if let Some(note) = final_note {
        s.push_str(&format!("Your FINAL did not count: {}\n", truncate(note, 500)));
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
            s.push_str(&format!("REPL variables: {}\n", truncate(&vars.join(", "), 1000)));
        }
    }
    s.push_str(&format!(
        "\nQuestion: {question}\nIf the output above answers the question, write FINAL(your answer) on its own line now. Otherwise continue with a ```repl block."
    ));
    s
}

/// Head and tail of `s` within `n` characters, with a note saying how much was left out.
fn truncate(s: &str, n: usize) -> String {
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

    #[test]
    fn the_judging_grammar_writes_the_question_s_labels_in() {
        let labels = vec!["description and abstract concept".to_string(), "entity".into(), "say \"hi\"".into()];
        let g = judge_records_grammar(&labels);
        assert!(
            g.contains(r#"("count_labels(" | "label_records(") "[\"description and abstract concept\", \"entity\", \"say \\\"hi\\\"\"]""#),
            "{g}"
        );
        assert!(!g.contains("label ::="), "no rule is left unused: {g}");
        assert_eq!(judge_records_grammar(&["one".into()]), JUDGE_RECORDS_GRAMMAR, "one label is no list");
        assert_eq!(judge_records_grammar(&[]), JUDGE_RECORDS_GRAMMAR);
    }

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
