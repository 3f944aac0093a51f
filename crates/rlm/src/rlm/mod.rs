//! The Recursive Language Model loop: the root model sees the folder's shape and the question,
//! writes code, sees (truncated) results, and repeats until it gives a final answer or a
//! [`Budget`] limit ends the run.
//!
//! Here is the loop over turns, each ending in a [`TurnOutcome`]. Around it: [`session`] holds
//! the conversation and the REPL, [`reply`] reads what of a reply runs, [`repeats`] remembers
//! what ran and failed, [`feedback`] writes the next user message, and [`grammar`] and
//! [`prompts`] load what the model reads from `assets/prompts/`.

mod feedback;
mod grammar;
mod prompts;
mod repeats;
mod reply;
mod session;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use quarry_index::Folder;
use quarry_llm::{ChatMessage, ChatRequest, FinishReason, LanguageModel, Sampling, Usage};
use quarry_repl::{Context, ContextDocument, SandboxConfig};
use tokio::sync::mpsc::unbounded_channel;

use crate::budget::{Budget, StopReason};
use crate::context::FolderSummary;
use crate::evidence::{copied_line, examples_of, outputs, premature_final, references, unchanged_answer, Premature};
use crate::host::{Labeller, Recursion, RunHost, SubCallStats};
use crate::parse::{CodeBlock, FinalAnswer, Reply};
use crate::question::{listed_labels, needs_judgement};
use crate::repl_thread::ReplThread;
use crate::trajectory::{AnswerSource, BlockRun, Event, Iteration, Metadata, Trajectory};
use crate::{CancelToken, Error, Result};

use feedback::{absent_words_note, feedback, truncate};
use grammar::{grammar_after, judge_grammar_for, CUT_GRAMMAR};
pub use grammar::{judge_records_grammar, CODE_GRAMMAR, JUDGE_GRAMMAR, JUDGE_RECORDS_GRAMMAR, ROOT_GRAMMAR};
pub use prompts::SYSTEM_PROMPT;
use prompts::{fill, sentences};
use repeats::{
    has_answer_dict, is_syntax_error, last_failure, last_that_ran, names_its_fix, repeats_failed_turn,
    repeats_last_turn,
};
use reply::{bare_final, close_stopped_block, comment_only, cut_to_what_runs, echoes_error, Defect};
use session::Run;
pub(crate) use session::Stream;

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
    /// The collection's index the documents came from, which then answers `grep` and `search`.
    index: Option<std::sync::Arc<dyn quarry_index::Corpus>>,
}

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
        let say = sentences();
        let input = Input {
            description: summary.describe(self.config.max_listed_files),
            documents: folder.documents().iter().map(|d| (d.path.clone(), d.text.clone())).collect(),
            layouts: folder.entries().map(|(d, l)| (d.path.clone(), l.clone())).collect(),
            text: false,
            records: summary.records.is_some(),
            index: folder.index(),
            first_step: match (&summary.records, summary.has_python()) {
                (Some(_), _) if self.config.judge_first && needs_judgement(question) => &say.first_step_judge_records,
                (Some(_), _) => &say.first_step_records,
                (None, true) => &say.first_step_python,
                (None, false) => &say.first_step,
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
            first_step: &sentences().first_step,
            records: false,
            index: None,
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
        let Input { description, documents, layouts, text, first_step, records, index } = input;
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
        let mut host = RunHost::new(
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
        .with_labeller(self.root.clone(), self.config.labeller);
        if let Some(index) = index {
            host = host.with_corpus(index);
        }
        let host = Arc::new(host);
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
                ChatMessage::user(fill(
                    &sentences().first_turn,
                    &[("description", &description), ("question", question), ("first_step", first_step)],
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
        let ask = Ask { question, records, labels, budget, deadline, stats, corpus, cancel };
        let mut steering = Steering {
            next_grammar: (self.config.judge_first && needs_judgement(question))
                .then(|| judge_grammar_for(ask.records, &ask.labels)),
            ..Steering::default()
        };
        let mut answer = None;
        let stop = loop {
            if let Some(stop) = ask.limit_reached(&run, &trajectory, &steering) {
                break stop;
            }
            match self.turn(&ask, &mut run, &mut steering, &mut trajectory, &mut on_event).await? {
                TurnOutcome::Cancelled => break StopReason::Cancelled,
                TurnOutcome::Answered(text, source) => {
                    answer = Some((text, source));
                    break StopReason::Final;
                }
                TurnOutcome::SentBack => {}
                TurnOutcome::Repeated => {
                    steering.consecutive_errors += 1;
                    steering.resample = true;
                }
                TurnOutcome::Ran { failed, no_code } => {
                    steering.consecutive_errors = if failed { steering.consecutive_errors + 1 } else { 0 };
                    steering.no_code_last_turn = no_code;
                }
            }
        };
        let Ask { stats, cancel, .. } = ask;

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

    /// One root turn: ask, read the reply, run what it holds (or say why not), and decide
    /// whether its answer stands. Every turn that does not end the run leaves the next user
    /// message in the conversation and one [`Iteration`] in the trajectory.
    async fn turn<F>(
        &self,
        ask: &Ask<'_>,
        run: &mut Run,
        steering: &mut Steering,
        trajectory: &mut Trajectory,
        on_event: &mut F,
    ) -> Result<TurnOutcome>
    where
        F: FnMut(&Event) + Send,
    {
        let cancel = &ask.cancel;
        let question = ask.question;
        let index = trajectory.iterations.len() + 1;
        let turn_started = Instant::now();
        on_event(&Event::IterationStarted { index });
        let (grammar, sampling) = steering.next_turn(&self.config, index);
        let completion = run.root_turn(self, grammar.as_deref(), sampling, cancel, on_event).await?;
        if completion.finish_reason == FinishReason::Cancelled || cancel.is_cancelled() {
            return Ok(TurnOutcome::Cancelled);
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
            steering.resample = true;
        }
        run.messages.push(ChatMessage::assistant(text.clone()));
        let iteration =
            |code_blocks: Vec<BlockRun>, final_answer: Option<String>, premature: Option<Premature>| Iteration {
                index,
                response: text.clone(),
                code_blocks,
                final_answer,
                premature: premature.map(|p| p.name().to_string()),
                usage: completion.usage,
                seconds: turn_started.elapsed().as_secs_f64(),
            };

        let repaired_failure =
            self.repair_echo(&text, &mut reply, &mut defect, run, steering, trajectory, ask, on_event).await?;

        // A small model that has seen its answer often writes the same code again rather
        // than FINAL (greedy decoding then repeats it to the last turn: the 1.5B model ran
        // one grep 12 times with the needle in its output). Running it again shows nothing
        // new, so instead the model is asked, without code, whether the output answers.
        // A FINAL beside the repeated code was written after seeing that code's output, so
        // unlike a FINAL beside new code it is taken.
        if repeats_last_turn(&reply.blocks, last_that_ran(&trajectory.iterations)) {
            let probe = match &reply.final_answer {
                Some(f) => Some(f.clone()),
                None => run.answer_probe(self, cancel, on_event).await?,
            };
            if cancel.is_cancelled() {
                return Ok(TurnOutcome::Cancelled);
            }
            let answer = match probe {
                Some(FinalAnswer::Text(t)) => Some((t, AnswerSource::Prose)),
                Some(FinalAnswer::Var(name)) => {
                    run.final_var(&name, on_event).await?.final_answer.map(|t| (t, AnswerSource::Prose))
                }
                None => None,
            };
            let premature = self.judge_final(question, &answer, &trajectory.iterations, &[], &ask.stats, steering);
            let refused = self.send_back(premature, &answer, steering, trajectory.iterations.len(), ask, on_event);
            let kept = answer.as_ref().filter(|_| !refused).map(|(t, _)| t.clone());
            trajectory.iterations.push(iteration(Vec::new(), kept, premature));
            if refused {
                steering.next_grammar = premature.and_then(|p| grammar_after(p, ask.records, &ask.labels));
                let reason = premature.map(Premature::feedback).unwrap_or_default();
                run.messages.push(ChatMessage::user(fill(
                    &sentences().sent_back,
                    &[("reason", reason), ("question", question)],
                )));
                return Ok(TurnOutcome::SentBack);
            }
            if let Some((t, source)) = answer {
                return Ok(TurnOutcome::Answered(t, source));
            }
            run.messages.push(ChatMessage::user(fill(&sentences().repeated_code, &[("question", question)])));
            return Ok(TurnOutcome::Repeated);
        }

        // The same code as a turn that failed fails the same way: greedy decoding wrote one
        // crashing block three turns running (a `ValueError` each time) and ended the run.
        if let Some(error) = repeats_failed_turn(&reply.blocks, last_that_ran(&trajectory.iterations)) {
            on_event(&Event::Notice {
                message: "the root model repeated code that failed; it was not run again".into(),
            });
            trajectory.iterations.push(iteration(Vec::new(), None, None));
            run.messages.push(ChatMessage::user(fill(
                &sentences().repeated_failure,
                &[("error", &truncate(&error, 600)), ("question", question)],
            )));
            return Ok(TurnOutcome::Repeated);
        }

        let (runs, mut answer) = self.run_blocks(index, &reply.blocks, repaired_failure, run, ask, on_event).await?;
        let code_failed = !runs.is_empty() && runs.iter().any(|r| r.result.error.is_some());
        let mut final_note = None;
        if answer.is_none() && !code_failed {
            (answer, final_note) = take_final(&reply, run, on_event).await?;
        }
        if answer.is_none() && !runs.is_empty() && has_answer_dict(runs.last().map(|r| &r.result)) {
            if let Some(t) = run.answer_variable(on_event).await? {
                answer = Some((t, AnswerSource::AnswerVariable));
            }
        }

        let premature = self.judge_final(question, &answer, &trajectory.iterations, &runs, &ask.stats, steering);
        if self.send_back(premature, &answer, steering, trajectory.iterations.len(), ask, on_event) {
            answer = None;
            steering.next_grammar = premature.and_then(|p| grammar_after(p, ask.records, &ask.labels));
            final_note = premature.map(|p| p.feedback().to_string());
        }
        trajectory.iterations.push(iteration(runs.clone(), answer.as_ref().map(|(t, _)| t.clone()), premature));
        on_event(&Event::Usage { root: run.root_usage, sub: *ask.stats.usage.lock().expect("usage lock") });
        if let Some((t, source)) = answer {
            return Ok(TurnOutcome::Answered(t, source));
        }

        if code_failed && reply.final_answer.is_some() {
            final_note = Some(sentences().final_beside_failed_code.clone());
        }
        let mut feedback = feedback(&reply.blocks, &runs, defect, final_note.as_deref(), question, run.feedback_chars);
        for r in &runs {
            feedback.push_str(&absent_words_note(r, |s| ask.corpus.occurs(s)));
        }
        for note in ask.corpus.take_notes() {
            feedback.push_str(&note);
        }
        // Small models loop on one block; say so, since seeing the same output again does
        // not make them move on.
        let previous = trajectory.iterations.iter().rev().nth(1).map(|it| &it.code_blocks);
        if !runs.is_empty()
            && previous.is_some_and(|p| p.iter().map(|r| &r.block.code).eq(runs.iter().map(|r| &r.block.code)))
        {
            feedback.push_str(&sentences().ran_the_same_code);
        }
        run.messages.push(ChatMessage::user(feedback));
        Ok(TurnOutcome::Ran {
            failed: runs.is_empty() || runs.iter().all(|r| r.result.error.is_some()),
            no_code: reply.blocks.is_empty() && reply.final_answer.is_none(),
        })
    }

    /// A reply that is the last error message, copied (as prose, as a block, or as prints of
    /// it): the 1.5B root, shown a traceback, wrote it back turn after turn until the error
    /// limit ended the run (3 of 5 dev OOLONG runs at 8K, stop 23; 3 of 4 paraphrased ones,
    /// stop 26). What it meant was "fix that", so the code that failed gets the repair round a
    /// failing block gets, once, and the fix becomes the reply's block. Returns the code that
    /// was repaired; without a repair, the reply runs nothing ([`Defect::EchoedError`]).
    #[allow(clippy::too_many_arguments)]
    async fn repair_echo<F: FnMut(&Event) + Send>(
        &self,
        text: &str,
        reply: &mut Reply,
        defect: &mut Defect,
        run: &mut Run,
        steering: &mut Steering,
        trajectory: &Trajectory,
        ask: &Ask<'_>,
        on_event: &mut F,
    ) -> Result<Option<String>> {
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
        if !echo {
            return Ok(None);
        }
        let failure = last_failure(&trajectory.iterations).filter(|(code, _)| !steering.repaired.contains(code));
        let fixed = match failure {
            Some((code, failed)) if self.config.repair_syntax => {
                steering.repaired.insert(code.clone());
                run.repair(self, &code, &failed, &ask.cancel, on_event).await?.map(|fix| (code, fix))
            }
            _ => None,
        };
        on_event(&Event::Notice {
            message: format!(
                "the root model wrote an error message as its reply; {}",
                if fixed.is_some() { "the code that failed was repaired instead" } else { "nothing ran" }
            ),
        });
        Ok(match fixed {
            Some((code, fix)) => {
                reply.blocks = vec![CodeBlock { lang: "repl".into(), code: fix }];
                Some(code)
            }
            None => {
                reply.blocks.clear();
                *defect = Defect::EchoedError;
                None
            }
        })
    }

    /// Runs a reply's blocks in order until one fails to give more, each with its repair round:
    /// a block that does not compile, or fails with an error that names its fix, is repaired
    /// once and the fix runs in its place. `repaired_from` is the code the first block repairs
    /// (see [`Rlm::repair_echo`]). Returns what ran, and the answer a block gave.
    async fn run_blocks<F: FnMut(&Event) + Send>(
        &self,
        index: usize,
        blocks: &[CodeBlock],
        mut repaired_failure: Option<String>,
        run: &mut Run,
        ask: &Ask<'_>,
        on_event: &mut F,
    ) -> Result<(Vec<BlockRun>, Option<(String, AnswerSource)>)> {
        let mut runs: Vec<BlockRun> = Vec::new();
        for (i, block) in blocks.iter().enumerate() {
            if ask.cancel.is_cancelled() {
                break;
            }
            on_event(&Event::CodeBlock { iteration: index, index: i + 1, code: block.code.clone() });
            let mut block = block.clone();
            let mut result = run.execute(block.code.clone(), on_event).await?;
            let mut repaired_from = repaired_failure.take();
            // `FINAL(The code is 7391.)` alone in a block is an answer written in a code fence,
            // not Python: take its text, as a FINAL line in prose would be.
            if is_syntax_error(&result) {
                if let Some(text) = bare_final(&block.code) {
                    on_event(&Event::ReplResult { iteration: index, index: i + 1, result: result.clone() });
                    runs.push(BlockRun { block, result, repaired_from });
                    return Ok((runs, Some((text, AnswerSource::Prose))));
                }
            }
            if self.config.repair_syntax
                && repaired_from.is_none()
                && (is_syntax_error(&result) || names_its_fix(&result))
            {
                if let Some(fixed) = run.repair(self, &block.code, &result, &ask.cancel, on_event).await? {
                    let fixed_result = run.execute(fixed.clone(), on_event).await?;
                    // A "fix" that does not compile, of code that did, is worse than the error
                    // it fixed: the 1.5B turned `importjsonl = label_records(...)` (a KeyError
                    // further down) into `import jsonl = ...` and then echoed the SyntaxError
                    // (para-oolong-8k-000, stop 26). Nothing of it ran.
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
                return Ok((runs, Some((text, AnswerSource::Code))));
            }
        }
        Ok((runs, None))
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
        steering: &Steering,
    ) -> Option<Premature> {
        let (text, _) = answer.as_ref()?;
        let served = stats.served.load(Ordering::SeqCst);
        premature_final(question, text, iterations, runs, served, examples_of(SYSTEM_PROMPT)).or_else(|| {
            let since = iterations.get(steering.sent_back_at..).unwrap_or_default();
            let new_output = !outputs(since.iter().flat_map(|it| it.code_blocks.iter()).chain(runs)).trim().is_empty();
            unchanged_answer(text, steering.sent_back_answer.as_deref(), new_output).then_some(Premature::Unchanged)
        })
    }

    /// One short call that cuts a copied line down to the value the question asks for, with the
    /// line's references kept; `None` (keep the line) when the reply is not a part of the line,
    /// so a cut can drop words but never make a value up.
    async fn cut_to_value(&self, question: &str, line: &str) -> Option<String> {
        let mut request = ChatRequest {
            max_tokens: Some(48),
            sampling: Sampling { temperature: 0.0, ..self.config.sampling.clone() },
            ..ChatRequest::new(vec![ChatMessage::user(fill(
                &sentences().cut_to_value,
                &[("question", question), ("line", line)],
            ))])
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
        answer: &Option<(String, AnswerSource)>,
        steering: &mut Steering,
        turns: usize,
        ask: &Ask<'_>,
        on_event: &mut F,
    ) -> bool {
        let Some(p) = premature else { return false };
        let room = turns + 1 < ask.budget.max_iterations
            && ask.deadline.is_none_or(|d| Instant::now() + std::time::Duration::from_secs(20) < d);
        if !self.config.check_final || !room || !steering.sent_back.insert(p) {
            return false;
        }
        steering.sent_back_answer = answer.as_ref().map(|(t, _)| t.clone());
        steering.sent_back_at = turns;
        // Greedy decoding gave the unchanged answer a third time when only told (para codeqa
        // 8K, stop 27): sample the turn after, as after a repeated block.
        steering.resample |= p == Premature::Unchanged;
        on_event(&Event::Notice {
            message: format!("the root model answered before its evidence ({}); it was sent back to work on", p.name()),
        });
        true
    }
}

/// What every turn of one run reads: the question, what the loop read off it, and the run's
/// limits and shared counters.
struct Ask<'a> {
    question: &'a str,
    /// The folder holds records (`records()` parses most of its lines).
    records: bool,
    /// The labels the question lists (see [`listed_labels`]).
    labels: Vec<String>,
    budget: Budget,
    deadline: Option<Instant>,
    stats: Arc<SubCallStats>,
    /// The run's host, asked which words occur in the documents and for its notes.
    corpus: Arc<RunHost>,
    cancel: CancelToken,
}

impl Ask<'_> {
    /// The limit that ends the run before another turn, if one is reached.
    fn limit_reached(&self, run: &Run, trajectory: &Trajectory, steering: &Steering) -> Option<StopReason> {
        let sub_usage = *self.stats.usage.lock().expect("usage lock");
        let budget = &self.budget;
        if self.cancel.is_cancelled() {
            Some(StopReason::Cancelled)
        } else if self.stats.exhausted.load(Ordering::SeqCst) {
            Some(StopReason::MaxSubCalls)
        } else if steering.consecutive_errors >= budget.max_consecutive_errors {
            Some(StopReason::ConsecutiveErrors)
        } else if trajectory.iterations.len() >= budget.max_iterations {
            Some(StopReason::MaxIterations)
        } else if budget.max_tokens.is_some_and(|m| run.root_usage.total() + sub_usage.total() >= m) {
            Some(StopReason::MaxTokens)
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            Some(StopReason::WallClock)
        } else {
            None
        }
    }
}

/// What one turn leaves the next: the loop's state between turns.
#[derive(Default)]
struct Steering {
    /// Turns in a row whose code all failed, or that ran none.
    consecutive_errors: usize,
    /// The last reply had neither code nor an answer (small models echo the last message
    /// back), so the next turn may only be code: a grammar is the one instruction they cannot
    /// ignore.
    no_code_last_turn: bool,
    /// The grammar the next turn must follow: the first when the question needs judging, the
    /// one after a send-back.
    next_grammar: Option<String>,
    /// Sample the next turn: greedy decoding repeats itself, and after the model has repeated a
    /// block or been cut off with nothing run, one sampled turn breaks the loop.
    resample: bool,
    /// The reasons premature answers were sent back for: each once.
    sent_back: HashSet<Premature>,
    /// The last answer sent back, and the number of turns before it: the same answer after new
    /// output is [`Premature::Unchanged`].
    sent_back_answer: Option<String>,
    sent_back_at: usize,
    /// The failed code an echoed error has had repaired: each once.
    repaired: HashSet<String>,
}

impl Steering {
    /// The grammar and sampling of turn `index`.
    fn next_turn(&mut self, config: &RlmConfig, index: usize) -> (Option<String>, Sampling) {
        let grammar = match (config.accepts_grammar, config.root_grammar, self.no_code_last_turn) {
            (false, _, _) => None,
            (true, _, _) if self.next_grammar.is_some() => self.next_grammar.take(),
            (true, true, _) => Some(ROOT_GRAMMAR.to_string()),
            (true, false, true) => Some(CODE_GRAMMAR.to_string()),
            (true, false, false) => None,
        };
        let sampling = if std::mem::take(&mut self.resample) {
            Sampling {
                temperature: 0.7,
                seed: config.sampling.seed.wrapping_add(index as u32),
                ..config.sampling.clone()
            }
        } else {
            config.sampling.clone()
        };
        (grammar, sampling)
    }
}

/// What one root turn came to.
enum TurnOutcome {
    /// Its answer stands: the run ends.
    Answered(String, AnswerSource),
    /// Its answer came before the evidence and went back with the reason; the run goes on.
    SentBack,
    /// It brought nothing new (the code that ran last time, or code that failed): an error,
    /// and the next turn is sampled.
    Repeated,
    /// Its code ran, or nothing did: `failed` when no block ran without error, `no_code` when
    /// the reply held neither code nor an answer.
    Ran {
        failed: bool,
        no_code: bool,
    },
    Cancelled,
}

/// The answer a reply's FINAL gives once its code ran without error. A FINAL(text) written
/// beside code was written before the code's output was seen: the reference takes it, but
/// small models fill it with a guess (the 0.5B model answered "2760", a file size from the
/// listing, beside the grep that would have found the code). So it waits for the output, with
/// a note saying why. FINAL_VAR beside code names a value the code computed, so it is taken.
async fn take_final<F: FnMut(&Event) + Send>(
    reply: &Reply,
    run: &mut Run,
    on_event: &mut F,
) -> Result<(Option<(String, AnswerSource)>, Option<String>)> {
    Ok(match &reply.final_answer {
        Some(FinalAnswer::Text(_)) if !reply.blocks.is_empty() => (None, Some(sentences().final_beside_code.clone())),
        Some(FinalAnswer::Text(t)) => (Some((t.clone(), AnswerSource::Prose)), None),
        Some(FinalAnswer::Var(name)) => {
            let r = run.final_var(name, on_event).await?;
            match r.final_answer {
                Some(t) => (Some((t, AnswerSource::Prose)), None),
                None => (None, Some(r.error.unwrap_or_else(|| format!("FINAL_VAR({name}) found nothing")))),
            }
        }
        None => (None, None),
    })
}
