//! What `llm_query`, `grep`, `read` and `files` do during a run: [`RunHost`] bridges the REPL's
//! synchronous host calls to the async sub [`LanguageModel`] and serves the document functions
//! over the loaded folder.
//!
//! The REPL calls [`HostFunctions`] on its own `repl-host-call` threads, never on a tokio
//! worker, so blocking there on a runtime [`Handle`] is safe; the loop itself runs each
//! execution on a blocking thread so no runtime worker waits on Python either.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use quarry_llm::{ChatRequest, LanguageModel, Usage};
use quarry_repl::{DocumentsHost, HostFunctions, HostResult};
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::sync::mpsc::UnboundedSender;

use crate::trajectory::{preview, Event};

/// Characters of a prompt or response shown in sub-call events.
const PREVIEW_CHARS: usize = 200;

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
}

/// The host side of one run's REPL.
pub struct RunHost {
    handle: Handle,
    sub: Arc<dyn LanguageModel>,
    documents: DocumentsHost,
    max_sub_calls: usize,
    sub_max_tokens: Option<usize>,
    stats: Arc<SubCallStats>,
    cancel: Arc<AtomicBool>,
    events: UnboundedSender<Event>,
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
        cancel: Arc<AtomicBool>,
        events: UnboundedSender<Event>,
    ) -> RunHost {
        RunHost {
            handle,
            sub,
            documents: DocumentsHost { documents },
            max_sub_calls,
            sub_max_tokens,
            stats,
            cancel,
            events,
        }
    }

    /// Reserves `n` sub-calls, or refuses all of them: a batch is never half-served, so the
    /// model's list of answers always lines up with its prompts.
    fn reserve(&self, n: usize) -> HostResult<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err("the run was cancelled".into());
        }
        let first = self.stats.calls.fetch_add(n, Ordering::SeqCst);
        if first + n > self.max_sub_calls {
            self.stats.exhausted.store(true, Ordering::SeqCst);
            return Err(format!("the budget of {} sub-calls is spent; answer with what you have", self.max_sub_calls));
        }
        Ok(first)
    }

    async fn ask(&self, id: usize, prompt: &str, model: Option<&str>) -> HostResult<String> {
        let _ = model; // one sub model per run for now; the name is accepted for compatibility
        let _ = self.events.send(Event::SubCallStarted {
            id,
            prompt_preview: preview(prompt, PREVIEW_CHARS),
            prompt_chars: prompt.chars().count(),
        });
        self.stats.served.fetch_add(1, Ordering::SeqCst);
        let started = Instant::now();
        let mut request = ChatRequest::new(vec![quarry_llm::local::ChatMessage::user(prompt)]);
        request.max_tokens = self.sub_max_tokens;
        let result = self.sub.chat(&request).await;
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(c) => {
                *self.stats.usage.lock().expect("usage lock") += c.usage;
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
                Err(format!("the sub model failed: {e}"))
            }
        }
    }
}

impl HostFunctions for RunHost {
    fn llm_query(&self, prompt: &str, model: Option<&str>) -> HostResult<String> {
        let id = self.reserve(1)?;
        self.handle.block_on(self.ask(id, prompt, model))
    }

    /// All prompts in flight at once: the local engine batches concurrent requests into one
    /// decode step, so this is where `llm_query_batched` gets its speed.
    fn llm_query_batched(&self, prompts: &[String], model: Option<&str>) -> HostResult<Vec<String>> {
        let first = self.reserve(prompts.len())?;
        let asks = prompts.iter().enumerate().map(|(i, p)| self.ask(first + i, p, model));
        let answers = self.handle.block_on(futures_util::future::join_all(asks));
        // A failed prompt becomes an error string in its slot rather than failing the batch: the
        // other answers were paid for.
        Ok(answers.into_iter().map(|a| a.unwrap_or_else(|e| format!("ERROR: {e}"))).collect())
    }

    /// Depth 1, as in the paper's experiments: a "recursive" call is a plain sub-model call with
    /// the given context prepended, not a nested RLM loop.
    fn rlm_query(&self, prompt: &str, context: Option<&Value>) -> HostResult<String> {
        let prompt = match context {
            Some(Value::String(c)) => format!("{c}\n\n{prompt}"),
            Some(c) => format!("{c}\n\n{prompt}"),
            None => prompt.to_string(),
        };
        self.llm_query(&prompt, None)
    }

    /// A regular expression per line (the `regex` crate's syntax, which matches Python's `re` for
    /// everything a model writes in practice).
    fn grep(&self, pattern: &str, glob: Option<&str>, ignore_case: bool, max_results: usize) -> HostResult<Value> {
        let re = regex::RegexBuilder::new(pattern)
            .case_insensitive(ignore_case)
            .build()
            .map_err(|e| format!("bad pattern {pattern:?}: {e}"))?;
        let mut hits = Vec::new();
        for (path, text) in &self.documents.documents {
            if glob.is_some_and(|g| !quarry_repl::host::glob_matches(g, path)) {
                continue;
            }
            for (i, line) in text.lines().enumerate() {
                if hits.len() >= max_results {
                    return Ok(Value::Array(hits));
                }
                if re.is_match(line) {
                    hits.push(serde_json::json!({ "path": path, "line": i + 1, "text": line }));
                }
            }
        }
        Ok(Value::Array(hits))
    }

    fn search(&self, query: &str, k: usize) -> HostResult<Value> {
        self.documents.search(query, k)
    }

    fn read(&self, path: &str, start: Option<usize>, end: Option<usize>) -> HostResult<String> {
        self.documents.read(path, start, end)
    }

    fn files(&self, glob: &str) -> HostResult<Vec<String>> {
        self.documents.files(glob)
    }
}
