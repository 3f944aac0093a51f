//! What `llm_query`, `grep`, `read` and `files` do during a run: [`RunHost`] bridges the REPL's
//! synchronous host calls to the async sub [`LanguageModel`] and serves the document functions
//! over the loaded folder.
//!
//! The REPL calls [`HostFunctions`] on its own `repl-host-call` threads, never on a tokio
//! worker, so blocking there on a runtime [`Handle`] is safe; the loop itself runs each
//! execution on a blocking thread so no runtime worker waits on Python either.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::CancelToken;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use quarry_index::{Corpus, Document, Folder, Layout, MemoryCorpus};

use quarry_llm::{ChatRequest, LanguageModel, ScoreRequest, Usage};
use quarry_repl::{HostFunctions, HostResult, PageRef, Source};
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::sync::mpsc::UnboundedSender;

use crate::corpus_host::CorpusHost;
use crate::rlm::{Rlm, RlmConfig};
use crate::trajectory::{preview, Event};

/// What `rlm_query` needs to start a child run.
pub struct Recursion {
    pub root: Arc<dyn LanguageModel>,
    /// The parent's configuration; the child gets the parent's remaining budget.
    pub config: RlmConfig,
    /// The depth of the run this host serves (0 at the top).
    pub depth: usize,
}

/// What a sub-call answers once the run's time is up.
const TIME_UP: &str = "the run's time limit is reached; answer with what you have";

/// Characters of a prompt or response shown in sub-call events.
const PREVIEW_CHARS: usize = 200;

/// Scored prompts that count as one sub-call (see `llm_score`).
const SCORES_PER_SUB_CALL: usize = 10;

/// The shared counters a run reads after each execution.
#[derive(Debug, Default)]
pub struct SubCallStats {
    /// Prompts asked (including refused ones), for the budget.
    pub calls: AtomicUsize,
    /// Set when a call was refused because the budget was spent.
    pub exhausted: AtomicBool,
    /// Prompts actually sent to the sub model.
    pub served: AtomicUsize,
    pub usage: Mutex<Usage>,
    /// What the run looked at, in order: grep and search hits, and chunks handed to sub-calls.
    /// Citations naming only a file are narrowed with it.
    pub sources: Mutex<Vec<Source>>,
}

/// Sources kept per run; a grep over a million lines should not grow this without bound.
const MAX_SOURCES: usize = 20_000;

impl SubCallStats {
    fn note(&self, sources: impl IntoIterator<Item = Source>) {
        let mut all = self.sources.lock().expect("sources lock");
        let room = MAX_SOURCES.saturating_sub(all.len());
        all.extend(sources.into_iter().take(room));
    }
}

/// The host side of one run's REPL.
pub struct RunHost {
    handle: Handle,
    sub: Arc<dyn LanguageModel>,
    /// The run's documents, `(path, text)`: for child runs and the notes on empty greps.
    documents: Vec<(String, String)>,
    /// `grep`, `search`, `read` and `files`: the one [`Corpus`] `quarry repl --folder` serves
    /// too. A collection's index when [`RunHost::with_corpus`] gave one; else the documents in
    /// memory, built at the first call (a run that never greps holds no second copy of them).
    corpus: OnceLock<CorpusHost>,
    /// The page layouts of paged documents (PDF, Office, EPUB, mail), by path: grep and search
    /// hits name their page, and `read(path, page=...)` reads one.
    layouts: HashMap<String, Layout>,
    max_sub_calls: usize,
    sub_max_tokens: Option<usize>,
    stats: Arc<SubCallStats>,
    cancel: CancelToken,
    events: UnboundedSender<Event>,
    recursion: Option<Recursion>,
    /// When the run's wall-clock budget ends. Sub-calls are refused after it and cut off at it:
    /// the loop checks the clock only between turns, and one turn's batch of sub-calls ran a
    /// 300 s run to 396 s.
    deadline: Option<Instant>,
    /// The sub model takes GBNF grammars (see `RlmConfig::sub_accepts_grammar`).
    sub_grammars: bool,
    /// This run's sub-model answers by prompt and grammar. Sub-calls decode greedily, so asking
    /// again would pay for the same answer: the 1.5B root re-ran a 33-prompt `llm_classify`
    /// with only its counting line changed and ran out of time (oolong-8k-000, docs/results.md).
    answered: Mutex<HashMap<(String, Option<String>), String>>,
    /// What the loop should tell the root after this execution (see [`RunHost::take_notes`]).
    notes: Mutex<Vec<String>>,
    /// The root model, when it may label by likelihood (see [`Labeller`]).
    root: Option<Arc<dyn LanguageModel>>,
    labeller: Labeller,
    /// The model this run's first `llm_score` chose; later calls use it too.
    chosen_labeller: Mutex<Option<Arc<dyn LanguageModel>>>,
}

impl RunHost {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        handle: Handle,
        sub: Arc<dyn LanguageModel>,
        documents: Vec<(String, String)>,
        max_sub_calls: usize,
        sub_max_tokens: Option<usize>,
        stats: Arc<SubCallStats>,
        cancel: CancelToken,
        events: UnboundedSender<Event>,
    ) -> RunHost {
        RunHost {
            handle,
            sub,
            corpus: OnceLock::new(),
            documents,
            layouts: HashMap::new(),
            max_sub_calls,
            sub_max_tokens,
            stats,
            cancel,
            events,
            recursion: None,
            deadline: None,
            sub_grammars: false,
            answered: Mutex::new(HashMap::new()),
            notes: Mutex::new(Vec::new()),
            root: None,
            labeller: Labeller::Sub,
            chosen_labeller: Mutex::new(None),
        }
    }

    /// The layouts of the run's paged documents (text files need none: they are one page).
    pub fn with_layouts(mut self, layouts: HashMap<String, Layout>) -> RunHost {
        self.layouts = layouts.into_iter().filter(|(_, l)| l.is_paged()).collect();
        self
    }

    /// Serves `grep`, `search`, `read` and `files` from `corpus` (a collection's index) instead
    /// of the documents in memory.
    pub fn with_corpus(self, corpus: Arc<dyn Corpus>) -> RunHost {
        // A fresh host: nothing has been served from the documents in memory yet.
        let _ = self.corpus.set(CorpusHost::new(corpus));
        self
    }

    fn corpus(&self) -> &CorpusHost {
        self.corpus.get_or_init(|| CorpusHost::new(Arc::new(memory_corpus(&self.documents, &self.layouts))))
    }

    /// Ends sub-calls at `deadline` (the run's wall-clock limit); a child run gets what is left.
    pub fn with_deadline(mut self, deadline: Option<Instant>) -> RunHost {
        self.deadline = deadline;
        self
    }

    /// Notes on the host calls of the last execution, for the loop's feedback; taking them
    /// clears them.
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().expect("notes lock"))
    }

    /// A grep of several words that matched no line: which of its words occur on their own.
    /// The 1.5B root grepped the question's phrase ("Sphere 3D consulting agreement") six
    /// turns running and, finding nothing, made the answer up; the words it needed were there.
    fn note_empty_grep(&self, pattern: &str, glob: Option<&str>) {
        let mut words: Vec<&str> = Vec::new();
        for w in pattern.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 3) {
            if !words.iter().any(|x| x.eq_ignore_ascii_case(w)) {
                words.push(w);
            }
        }
        if words.len() < 2 {
            return;
        }
        let counts: Vec<(&str, usize)> = words
            .iter()
            .map(|w| {
                let needle = w.to_lowercase();
                let n = self
                    .documents
                    .iter()
                    .filter(|(path, _)| glob.is_none_or(|g| quarry_repl::host::glob_matches(g, path)))
                    .flat_map(|(_, text)| text.lines())
                    .filter(|l| l.to_lowercase().contains(&needle))
                    .count();
                (*w, n)
            })
            .collect();
        let found: Vec<String> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(w, n)| format!("{w:?} ({n} line{})", if *n == 1 { "" } else { "s" }))
            .collect();
        let note = if found.is_empty() {
            format!("grep({pattern:?}) matched no line, and none of its words occurs in the documents: they say it in other words; grep for a word the answer itself would contain.\n")
        } else {
            format!(
                "grep({pattern:?}) matched no line, but its words occur on their own: {}. Grep for one distinctive word, or for words the answer itself would contain, not for the whole phrase.\n",
                found.join(", ")
            )
        };
        self.notes.lock().expect("notes lock").push(note);
    }

    /// Whether `text` occurs (as written) in any document of the run.
    pub fn occurs(&self, text: &str) -> bool {
        self.documents.iter().any(|(_, t)| t.contains(text))
    }

    /// Sends the grammars of `llm_query_batched` calls (from `llm_classify`) to the sub model (a local engine or a
    /// llama.cpp server); without this they are dropped, as a hosted API would refuse them.
    pub fn with_sub_grammars(mut self, accepted: bool) -> RunHost {
        self.sub_grammars = accepted;
        self
    }

    /// Lets `rlm_query` start child runs (without this it is a plain sub-call).
    pub fn with_recursion(mut self, recursion: Recursion) -> RunHost {
        self.recursion = Some(recursion);
        self
    }

    /// A child RLM over `context` (or over the whole folder when `None`), with what is left of
    /// this run's sub-call and time budget. Its sub-calls and tokens count as this run's.
    fn child_run(&self, r: &Recursion, prompt: &str, context: Option<String>) -> HostResult<String> {
        let id = self.reserve(1)?;
        let mut config = r.config.clone();
        let used = self.stats.calls.load(Ordering::SeqCst);
        config.budget.max_sub_calls = self.max_sub_calls.saturating_sub(used);
        config.budget.wall_clock = self.deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let label = format!("rlm_query (depth {}): {prompt}", r.depth + 1);
        let _ = self.events.send(Event::SubCallStarted {
            id,
            prompt_preview: preview(&label, PREVIEW_CHARS),
            prompt_chars: prompt.chars().count() + context.as_ref().map_or(0, |c| c.chars().count()),
        });
        self.stats.served.fetch_add(1, Ordering::SeqCst);
        let started = Instant::now();
        let child = Rlm::child(r.root.clone(), self.sub.clone(), config, r.depth);
        let cancel = self.cancel.clone();
        let result = self.handle.block_on(async {
            match context {
                Some(text) => child.run_text(text, prompt, cancel, |_| {}).await,
                None => {
                    let parts = self.documents.iter().map(|(path, text)| {
                        let layout =
                            self.layouts.get(path).cloned().unwrap_or_else(|| Layout::text(text.lines().count()));
                        (Document { path: path.clone(), text: text.clone() }, layout)
                    });
                    child.run(&Folder::from_parts("", parts.collect()), prompt, cancel, |_| {}).await
                }
            }
        });
        let seconds = started.elapsed().as_secs_f64();
        let (ok, text, usage) = match result {
            Ok(run) => {
                self.stats.calls.fetch_add(run.sub_calls, Ordering::SeqCst);
                self.stats.served.fetch_add(run.sub_calls, Ordering::SeqCst);
                let text = run.answer.unwrap_or_else(|| {
                    format!("(the recursive run ended without an answer: {})", run.stop_reason.describe())
                });
                (true, text, run.usage)
            }
            Err(e) => (false, format!("the recursive run failed: {e}"), Usage::default()),
        };
        *self.stats.usage.lock().expect("usage lock") += usage;
        let _ = self.events.send(Event::SubCallFinished {
            id,
            ok,
            response_preview: preview(&text, PREVIEW_CHARS),
            usage,
            seconds,
        });
        if ok {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// Reserves `n` sub-calls, or refuses all of them: a batch is never half-served, so the
    /// model's list of answers always lines up with its prompts.
    fn reserve(&self, n: usize) -> HostResult<usize> {
        if self.cancel.is_cancelled() {
            return Err("the run was cancelled".into());
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(TIME_UP.into());
        }
        let first = self.stats.calls.fetch_add(n, Ordering::SeqCst);
        if first + n > self.max_sub_calls {
            self.stats.exhausted.store(true, Ordering::SeqCst);
            return Err(format!("the budget of {} sub-calls is spent; answer with what you have", self.max_sub_calls));
        }
        Ok(first)
    }

    /// The answer this run already has for `prompt` under `grammar`, if any.
    fn recall(&self, prompt: &str, grammar: Option<&str>) -> Option<String> {
        let key = (prompt.to_string(), self.sent_grammar(grammar));
        self.answered.lock().expect("answers lock").get(&key).cloned()
    }

    /// The grammar a sub-call actually carries: none where the sub model takes none.
    fn sent_grammar(&self, grammar: Option<&str>) -> Option<String> {
        grammar.filter(|_| self.sub_grammars).map(String::from)
    }

    async fn ask(&self, id: usize, prompt: &str, model: Option<&str>, grammar: Option<&str>) -> HostResult<String> {
        let _ = model; // one sub model per run for now; the name is accepted for compatibility
        let _ = self.events.send(Event::SubCallStarted {
            id,
            prompt_preview: preview(prompt, PREVIEW_CHARS),
            prompt_chars: prompt.chars().count(),
        });
        self.stats.served.fetch_add(1, Ordering::SeqCst);
        let started = Instant::now();
        let mut request = ChatRequest::new(vec![quarry_llm::ChatMessage::user(prompt)]);
        request.max_tokens = self.sub_max_tokens;
        request.constraint.grammar = self.sent_grammar(grammar);
        let result = match self.deadline {
            // Dropping the request at the deadline cancels it; the engine frees its slot.
            Some(d) => tokio::time::timeout_at(d.into(), self.sub.chat(&request))
                .await
                .unwrap_or(Err(quarry_llm::Error::TimeLimit)),
            None => self.sub.chat(&request).await,
        };
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(c) => {
                *self.stats.usage.lock().expect("usage lock") += c.usage;
                self.answered
                    .lock()
                    .expect("answers lock")
                    .insert((prompt.to_string(), request.constraint.grammar.clone()), c.text.clone());
                let _ = self.events.send(Event::SubCallFinished {
                    id,
                    ok: true,
                    response_preview: preview(&c.text, PREVIEW_CHARS),
                    usage: c.usage,
                    seconds,
                });
                Ok(c.text)
            }
            Err(e) => {
                let _ = self.events.send(Event::SubCallFinished {
                    id,
                    ok: false,
                    response_preview: preview(&e.to_string(), PREVIEW_CHARS),
                    usage: Usage::default(),
                    seconds,
                });
                if matches!(e, quarry_llm::Error::TimeLimit) {
                    return Err(TIME_UP.into());
                }
                Err(format!("the sub model failed: {e}"))
            }
        }
    }
}

/// Which model labels by likelihood (`llm_classify`): the 1.5B root labelled 75% of 100 TREC
/// test questions right, the 0.5B sub model 34% (evals/classify.py, docs/results.md), at about a
/// third of the speed. `Auto` lets the root label unless its measured speed would spend more than
/// half the run's remaining time on the call; the first call decides for the run, so one
/// labelling never mixes two models' calibrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Labeller {
    Sub,
    Root,
    #[default]
    Auto,
}

/// Prompts the root scores first, to measure its speed, under [`Labeller::Auto`].
const LABELLER_PROBE: usize = 8;

impl RunHost {
    /// Lets `root` label by likelihood, as `mode` says (without it the sub model labels).
    pub fn with_labeller(mut self, root: Arc<dyn LanguageModel>, mode: Labeller) -> RunHost {
        self.root = Some(root);
        self.labeller = mode;
        self
    }

    /// Scores `requests` with the run's labeller, choosing it on the first call; returns its
    /// name with the results, or the first error that stopped them all (the deadline).
    async fn score_all(
        &self,
        requests: &[ScoreRequest],
    ) -> (String, quarry_llm::Result<Vec<quarry_llm::Result<quarry_llm::Scores>>>) {
        let chosen = self.chosen_labeller.lock().expect("labeller lock").clone();
        let model = match (chosen, &self.root, self.labeller) {
            (Some(m), _, _) => m,
            (None, None, _) | (None, _, Labeller::Sub) => self.sub.clone(),
            (None, Some(root), mode) => {
                let probe = requests.len().min(if mode == Labeller::Auto { LABELLER_PROBE } else { requests.len() });
                let started = Instant::now();
                let first = match self.scored(root.as_ref(), &requests[..probe]).await {
                    Ok(r) => r,
                    Err(e) => return (root.name().to_string(), Err(e)),
                };
                let unsupported = first.iter().any(|r| matches!(r, Err(quarry_llm::Error::Unsupported(_))));
                let per_prompt = started.elapsed().as_secs_f64() / probe.max(1) as f64;
                let needed = per_prompt * (requests.len() - probe) as f64;
                let left = self.deadline.map(|d| d.saturating_duration_since(Instant::now()).as_secs_f64());
                let keep = !unsupported && left.is_none_or(|left| needed <= left / 2.0);
                if keep {
                    *self.chosen_labeller.lock().expect("labeller lock") = Some(root.clone());
                    let rest = match self.scored(root.as_ref(), &requests[probe..]).await {
                        Ok(r) => r,
                        Err(e) => return (root.name().to_string(), Err(e)),
                    };
                    return (root.name().to_string(), Ok(first.into_iter().chain(rest).collect()));
                }
                tracing::info!(
                    root = root.name(),
                    per_prompt,
                    prompts = requests.len(),
                    unsupported,
                    "the sub model labels: the root would take too long or cannot score"
                );
                self.sub.clone()
            }
        };
        *self.chosen_labeller.lock().expect("labeller lock") = Some(model.clone());
        let name = model.name().to_string();
        (name, self.scored(model.as_ref(), requests).await)
    }

    /// Every request in flight at once, cut off at the run's deadline.
    async fn scored(
        &self,
        model: &dyn LanguageModel,
        requests: &[ScoreRequest],
    ) -> quarry_llm::Result<Vec<quarry_llm::Result<quarry_llm::Scores>>> {
        let all = futures_util::future::join_all(requests.iter().map(|r| model.score(r)));
        match self.deadline {
            Some(d) => tokio::time::timeout_at(d.into(), all).await.map_err(|_| quarry_llm::Error::TimeLimit),
            None => Ok(all.await),
        }
    }
}

impl RunHost {
    fn note_hits(&self, hits: &[Value]) {
        self.stats.note(hits.iter().filter_map(|h| {
            let path = h.get("path")?.as_str()?.to_string();
            let line = h.get("line")?.as_u64()? as usize;
            let end = h.get("line_end").and_then(Value::as_u64).map_or(line, |e| e as usize);
            Some(Source { path, line_start: line, line_end: end })
        }));
    }
}

impl HostFunctions for RunHost {
    fn llm_query(&self, prompt: &str, model: Option<&str>) -> HostResult<String> {
        if let Some(answer) = self.recall(prompt, None) {
            return Ok(answer);
        }
        let id = self.reserve(1)?;
        self.handle.block_on(self.ask(id, prompt, model, None))
    }

    /// All prompts in flight at once: the local engine batches concurrent requests into one
    /// decode step, so this is where `llm_query_batched` gets its speed.
    fn llm_query_batched(
        &self,
        prompts: &[String],
        model: Option<&str>,
        grammars: &[String],
    ) -> HostResult<Vec<String>> {
        let grammar = |i: usize| grammars.get(i).map(String::as_str);
        let mut answers: Vec<Option<String>> =
            prompts.iter().enumerate().map(|(i, p)| self.recall(p, grammar(i))).collect();
        let new: Vec<usize> = (0..prompts.len()).filter(|&i| answers[i].is_none()).collect();
        if !new.is_empty() {
            let first = self.reserve(new.len())?;
            let asks = new.iter().enumerate().map(|(k, &i)| self.ask(first + k, &prompts[i], model, grammar(i)));
            let asked = self.handle.block_on(futures_util::future::join_all(asks));
            // A failed prompt becomes an error string in its slot rather than failing the batch:
            // the other answers were paid for.
            for (&i, a) in new.iter().zip(asked) {
                answers[i] = Some(a.unwrap_or_else(|e| format!("ERROR: {e}")));
            }
        }
        Ok(answers.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Every prompt scored at once (the engine batches them), by the run's labeller (see
    /// [`RunHost::with_labeller`]). Ten scored prompts count as one sub-call against the budget:
    /// scoring one short prompt evaluates about a tenth of what a labelling prompt of ten items
    /// costs, and generates nothing, so counting each as a call would end a 1,300-record OOLONG
    /// labelling at the default 200 calls, where the generated path needs 133. Scores already
    /// computed in this run are reused.
    fn llm_score(&self, prompts: &[String], candidates: &[String], model: Option<&str>) -> HostResult<Value> {
        let _ = model; // the run's labeller decides, as the sub model does for llm_query
        let key = |p: &str| (p.to_string(), Some(format!("score\u{1f}{}", candidates.join("\u{1f}"))));
        let known: Vec<Option<Value>> = {
            let answered = self.answered.lock().expect("answers lock");
            prompts.iter().map(|p| answered.get(&key(p)).and_then(|v| serde_json::from_str(v).ok())).collect()
        };
        let new: Vec<usize> = (0..prompts.len()).filter(|&i| known[i].is_none()).collect();
        let mut out = known;
        if new.is_empty() {
            return Ok(Value::Array(out.into_iter().map(|v| v.unwrap_or(Value::Null)).collect()));
        }
        let reserved = new.len().div_ceil(SCORES_PER_SUB_CALL);
        let id = self.reserve(reserved)?;
        self.stats.served.fetch_add(reserved, Ordering::SeqCst);
        let requests: Vec<ScoreRequest> = new
            .iter()
            .map(|&i| ScoreRequest {
                messages: vec![quarry_llm::ChatMessage::user(&prompts[i])],
                candidates: candidates.to_vec(),
            })
            .collect();
        let started = Instant::now();
        let _ = self.events.send(Event::SubCallStarted {
            id,
            prompt_preview: preview(
                &format!(
                    "llm_score: {} prompt{} × {} candidates ({})",
                    new.len(),
                    if new.len() == 1 { "" } else { "s" },
                    candidates.len(),
                    candidates.join(" | ")
                ),
                PREVIEW_CHARS,
            ),
            prompt_chars: new.iter().map(|&i| prompts[i].chars().count()).sum(),
        });
        let (labeller, results) = self.handle.block_on(self.score_all(&requests));
        let seconds = started.elapsed().as_secs_f64();
        let mut usage = Usage::default();
        let mut failure = None;
        match results {
            Ok(results) => {
                let mut answered = self.answered.lock().expect("answers lock");
                for (&i, r) in new.iter().zip(results) {
                    match r {
                        Ok(s) => {
                            usage += s.usage;
                            let v = serde_json::to_value(&s.candidates).unwrap_or(Value::Null);
                            answered.insert(key(&prompts[i]), v.to_string());
                            out[i] = Some(v);
                        }
                        Err(e) => {
                            failure.get_or_insert(e);
                        }
                    }
                }
            }
            Err(e) => failure = Some(e),
        }
        *self.stats.usage.lock().expect("usage lock") += usage;
        let response = match &failure {
            Some(e) => e.to_string(),
            None => format!("{} prompts scored by {labeller}", new.len()),
        };
        let _ = self.events.send(Event::SubCallFinished {
            id,
            ok: failure.is_none(),
            response_preview: preview(&response, PREVIEW_CHARS),
            usage,
            seconds,
        });
        match failure {
            Some(quarry_llm::Error::TimeLimit) => Err(TIME_UP.into()),
            Some(quarry_llm::Error::Unsupported(m)) => {
                // Nothing was scored: the calls go back, for the generated labels to use.
                self.stats.calls.fetch_sub(reserved, Ordering::SeqCst);
                self.stats.served.fetch_sub(reserved, Ordering::SeqCst);
                Err(m)
            }
            Some(e) => Err(format!("the sub model failed: {e}")),
            None => Ok(Value::Array(out.into_iter().map(|v| v.unwrap_or(Value::Null)).collect())),
        }
    }

    /// A child RLM run with its own REPL while the depth allows (see `RlmConfig::max_depth`);
    /// at the deepest level a plain sub-model call with the context prepended, as in the
    /// paper's depth-1 experiments.
    fn rlm_query(&self, prompt: &str, context: Option<&Value>) -> HostResult<String> {
        if let Some(r) = self.recursion.as_ref().filter(|r| r.depth + 1 < r.config.max_depth) {
            let text = context.map(|c| match c {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            return self.child_run(r, prompt, text);
        }
        let prompt = match context {
            Some(Value::String(c)) => format!("{c}\n\n{prompt}"),
            Some(c) => format!("{c}\n\n{prompt}"),
            None => prompt.to_string(),
        };
        self.llm_query(&prompt, None)
    }

    /// ripgrep's semantics, from the run's [`Corpus`] (see [`CorpusHost`]).
    fn grep(&self, pattern: &str, glob: Option<&str>, ignore_case: bool, max_results: usize) -> HostResult<Value> {
        let hits = self.corpus().grep(pattern, glob, ignore_case, max_results)?;
        let list = hits.as_array().map(Vec::as_slice).unwrap_or_default();
        self.note_hits(list);
        if list.is_empty() {
            self.note_empty_grep(pattern, glob);
        }
        Ok(hits)
    }

    /// BM25 over line-addressed passages of about 2,000 characters, best first.
    fn search(&self, query: &str, k: usize) -> HostResult<Value> {
        let hits = self.corpus().search(query, k)?;
        self.note_hits(hits.as_array().map(Vec::as_slice).unwrap_or_default());
        Ok(hits)
    }

    fn note_sources(&self, _call: &str, sources: &[Source]) {
        self.stats.note(sources.iter().cloned());
    }

    fn read(&self, path: &str, start: Option<usize>, end: Option<usize>, page: Option<&PageRef>) -> HostResult<String> {
        self.corpus().read(path, start, end, page)
    }

    fn files(&self, glob: &str) -> HostResult<Vec<String>> {
        self.corpus().files(glob)
    }
}

/// The run's documents in memory, in their order, with their layouts (a text's when none).
fn memory_corpus(documents: &[(String, String)], layouts: &HashMap<String, Layout>) -> MemoryCorpus {
    let parts = documents
        .iter()
        .map(|(path, text)| {
            let layout = layouts.get(path).cloned().unwrap_or_else(|| Layout::text(text.lines().count()));
            (Document { path: path.clone(), text: text.clone() }, layout)
        })
        .collect();
    // Paths are relative to the folder: `rg -g` globs anchor at an empty root the same way.
    MemoryCorpus::new("", parts)
}
