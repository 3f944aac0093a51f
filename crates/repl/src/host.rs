//! What Python's host functions do is decided here, on the host: [`HostFunctions`] has one
//! method per function. The RLM loop implements it with real models and the index; tests use
//! [`EchoHost`]; [`NoHost`] answers every call with "not available".

use serde_json::Value;

use crate::protocol::{CallOutcome, HostCall, PageRef, Source};

/// The error Python sees, raised as `HostError("<function>: <message>")`.
pub type HostResult<T> = std::result::Result<T, String>;

/// The host's side of `llm_query`, `grep`, `read` and friends.
///
/// Calls arrive on their own threads (several at once when model code uses Python threads), so
/// implementations must be `Send + Sync`; time spent here does not count against an execution's
/// time limit (that limit is for the worker's own computing).
pub trait HostFunctions: Send + Sync + 'static {
    fn llm_query(&self, prompt: &str, model: Option<&str>) -> HostResult<String> {
        let _ = (prompt, model);
        Err(unavailable("llm_query"))
    }

    /// By default serves every prompt concurrently through [`llm_query`](Self::llm_query), one
    /// thread each, answers in prompt order. `grammars` (GBNF, empty or one per prompt)
    /// constrain the answers where the sub model takes grammars; the default, like a hosted
    /// API, goes without.
    fn llm_query_batched(
        &self,
        prompts: &[String],
        model: Option<&str>,
        grammars: &[String],
    ) -> HostResult<Vec<String>> {
        let _ = grammars;
        std::thread::scope(|s| {
            let handles: Vec<_> = prompts.iter().map(|p| s.spawn(move || self.llm_query(p, model))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("llm_query panicked".into()))).collect()
        })
    }

    /// Per prompt, per candidate, `{"logprob", "first_logprob", "tokens"}`: the candidate's
    /// log-probability as the sub model's whole reply to the prompt, and its first token's. Hosts
    /// whose sub model cannot score answer with an error saying it "does not score", and
    /// `llm_classify` falls back to generated labels.
    fn llm_score(&self, prompts: &[String], candidates: &[String], model: Option<&str>) -> HostResult<Value> {
        let _ = (prompts, candidates, model);
        Err(unavailable("llm_score"))
    }

    fn rlm_query(&self, prompt: &str, context: Option<&Value>) -> HostResult<String> {
        let _ = (prompt, context);
        Err(unavailable("rlm_query"))
    }

    /// Which document lines the prompts of an `llm_query` or `llm_query_batched` call contain:
    /// the chunks (cut by `chunks()` in the current context) whose text the worker found in
    /// them. `call` is `"llm_query"` or `"llm_query_batched"` (for a batch, the sources of all
    /// its prompts, each once, in prompt order).
    ///
    /// Called only when there are sources, on the call's own thread, just before the
    /// [`llm_query`](Self::llm_query) or [`llm_query_batched`](Self::llm_query_batched) it
    /// describes. The worker reports them, so they are claims (see [`Source`]). Does nothing by
    /// default.
    fn note_sources(&self, call: &str, sources: &[Source]) {
        let _ = (call, sources);
    }

    fn grep(&self, pattern: &str, glob: Option<&str>, ignore_case: bool, max_results: usize) -> HostResult<Value> {
        let _ = (pattern, glob, ignore_case, max_results);
        Err(unavailable("grep"))
    }

    fn search(&self, query: &str, k: usize) -> HostResult<Value> {
        let _ = (query, k);
        Err(unavailable("search"))
    }

    fn read(&self, path: &str, start: Option<usize>, end: Option<usize>, page: Option<&PageRef>) -> HostResult<String> {
        let _ = (path, start, end, page);
        Err(unavailable("read"))
    }

    fn files(&self, glob: &str) -> HostResult<Vec<String>> {
        let _ = glob;
        Err(unavailable("files"))
    }
}

fn unavailable(function: &str) -> String {
    format!("{function} is not available in this REPL (no host provides it)")
}

/// Dispatches one decoded call to the trait.
pub(crate) fn serve(host: &dyn HostFunctions, call: &HostCall) -> CallOutcome {
    let outcome: HostResult<Value> = match call {
        HostCall::LlmQuery { prompt, model, sources } => {
            note_sources(host, "llm_query", sources.iter());
            host.llm_query(prompt, model.as_deref()).map(Value::from)
        }
        HostCall::LlmQueryBatched { prompts, model, grammars, sources } => {
            if !grammars.is_empty() && grammars.len() != prompts.len() {
                return CallOutcome::Error(format!(
                    "{} grammars for {} prompts: give one per prompt, or none",
                    grammars.len(),
                    prompts.len()
                ));
            }
            note_sources(host, "llm_query_batched", sources.iter().flatten());
            host.llm_query_batched(prompts, model.as_deref(), grammars).map(Value::from)
        }
        HostCall::LlmScore { prompts, candidates, model } => {
            if candidates.is_empty() {
                return CallOutcome::Error("no candidates to score: give at least one".into());
            }
            host.llm_score(prompts, candidates, model.as_deref())
        }
        HostCall::RlmQuery { prompt, context } => host.rlm_query(prompt, context.as_ref()).map(Value::from),
        HostCall::Grep { pattern, glob, ignore_case, max_results } => {
            host.grep(pattern, glob.as_deref(), *ignore_case, *max_results)
        }
        HostCall::Search { query, k } => host.search(query, *k),
        HostCall::Read { path, start, end, page } => host.read(path, *start, *end, page.as_ref()).map(Value::from),
        HostCall::Files { glob } => host.files(glob).map(Value::from),
    };
    match outcome {
        Ok(v) => CallOutcome::Value(v),
        Err(e) => CallOutcome::Error(e),
    }
}

/// Passes the well-formed sources (lines counted from 1, not reversed), each once, to the host.
fn note_sources<'a>(host: &dyn HostFunctions, call: &str, sources: impl Iterator<Item = &'a Source>) {
    let mut seen = std::collections::HashSet::new();
    let sources: Vec<Source> =
        sources.filter(|s| s.line_start >= 1 && s.line_end >= s.line_start && seen.insert(*s)).cloned().collect();
    if !sources.is_empty() {
        host.note_sources(call, &sources);
    }
}

/// Every host function unavailable: a REPL for code that needs none of them.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHost;

impl HostFunctions for NoHost {}

/// `files`, `read`, `grep` and `search` over documents held in memory, by substring: the base of
/// [`EchoHost`] for this crate's tests. `quarry repl --folder` and the RLM serve the real ones,
/// ripgrep's grep and BM25, from `quarry_index::Corpus` (`quarry_rlm::CorpusHost`).
#[derive(Debug, Default, Clone)]
pub struct DocumentsHost {
    /// `(path, text)` pairs.
    pub documents: Vec<(String, String)>,
}

impl HostFunctions for DocumentsHost {
    fn grep(&self, pattern: &str, glob: Option<&str>, ignore_case: bool, max_results: usize) -> HostResult<Value> {
        let needle = if ignore_case { pattern.to_lowercase() } else { pattern.to_string() };
        let mut hits = Vec::new();
        for (path, text) in &self.documents {
            if glob.is_some_and(|g| !glob_matches(g, path)) {
                continue;
            }
            for (i, line) in text.lines().enumerate() {
                if hits.len() >= max_results {
                    return Ok(Value::Array(hits));
                }
                let found = if ignore_case { line.to_lowercase().contains(&needle) } else { line.contains(&needle) };
                if found {
                    hits.push(serde_json::json!({ "path": path, "line": i + 1, "text": line }));
                }
            }
        }
        Ok(Value::Array(hits))
    }

    fn search(&self, query: &str, k: usize) -> HostResult<Value> {
        self.grep(query, None, true, k)
    }

    /// Lines `start..=end`, 1-based; the whole text without bounds.
    fn read(&self, path: &str, start: Option<usize>, end: Option<usize>, page: Option<&PageRef>) -> HostResult<String> {
        if let Some(p) = page.filter(|p| **p != PageRef::Number(1)) {
            return Err(format!("{path} has no page {p}: these documents are read as plain text, one page each"));
        }
        let (_, text) =
            self.documents.iter().find(|(p, _)| p == path).ok_or_else(|| format!("no document named {path:?}"))?;
        if start.is_none() && end.is_none() {
            return Ok(text.clone());
        }
        let lines: Vec<&str> = text.lines().collect();
        let start = start.unwrap_or(1).max(1) - 1;
        let end = end.unwrap_or(lines.len()).min(lines.len());
        Ok(lines.get(start..end).unwrap_or_default().join("\n"))
    }

    fn files(&self, glob: &str) -> HostResult<Vec<String>> {
        Ok(self.documents.iter().map(|(p, _)| p.clone()).filter(|p| glob_matches(glob, p)).collect())
    }
}

/// A deterministic host for tests and benchmarks: `llm_query` answers `"echo: <prompt>"` after
/// [`EchoHost::delay`] (standing in for a model's latency), `rlm_query` answers
/// `"rlm: <prompt> (<context>)"`, and the document functions are a [`DocumentsHost`]'s.
#[derive(Debug, Default, Clone)]
pub struct EchoHost {
    pub documents: DocumentsHost,
    pub delay: std::time::Duration,
}

impl HostFunctions for EchoHost {
    fn llm_query(&self, prompt: &str, model: Option<&str>) -> HostResult<String> {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        Ok(match model {
            Some(m) => format!("echo[{m}]: {prompt}"),
            None => format!("echo: {prompt}"),
        })
    }

    fn rlm_query(&self, prompt: &str, context: Option<&Value>) -> HostResult<String> {
        Ok(format!("rlm: {prompt} ({})", context.map(|c| c.to_string()).unwrap_or_default()))
    }

    fn grep(&self, pattern: &str, glob: Option<&str>, ignore_case: bool, max_results: usize) -> HostResult<Value> {
        self.documents.grep(pattern, glob, ignore_case, max_results)
    }

    fn search(&self, query: &str, k: usize) -> HostResult<Value> {
        self.documents.search(query, k)
    }

    fn read(&self, path: &str, start: Option<usize>, end: Option<usize>, page: Option<&PageRef>) -> HostResult<String> {
        self.documents.read(path, start, end, page)
    }

    fn files(&self, glob: &str) -> HostResult<Vec<String>> {
        self.documents.files(glob)
    }
}

/// `*` (any run of characters, `/` included) and `?` (one character): enough for `files()` in
/// tests and the `quarry repl` folder host.
pub fn glob_matches(glob: &str, text: &str) -> bool {
    let (g, t): (Vec<char>, Vec<char>) = (glob.chars().collect(), text.chars().collect());
    let (mut gi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == t[ti]) {
            gi += 1;
            ti += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some(gi);
            mark = ti;
            gi += 1;
        } else if let Some(s) = star {
            gi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_and_questions() {
        assert!(glob_matches("*", "a/b.txt"));
        assert!(glob_matches("*.md", "notes/x.md"));
        assert!(!glob_matches("*.md", "notes/x.txt"));
        assert!(glob_matches("a?c", "abc"));
        assert!(!glob_matches("a?c", "ac"));
    }

    #[test]
    fn default_batched_keeps_prompt_order() {
        let host = EchoHost { delay: std::time::Duration::from_millis(50), ..Default::default() };
        let prompts: Vec<String> = (0..8).map(|i| i.to_string()).collect();
        let answers = host.llm_query_batched(&prompts, None, &[]).unwrap();
        assert_eq!(answers, (0..8).map(|i| format!("echo: {i}")).collect::<Vec<_>>());
    }

    /// Every prompt of a batch is in flight at once: each call waits at a barrier for all eight,
    /// which calls made one after another never reach (they would time out instead). No clock
    /// is read, so a loaded machine cannot make it flake.
    #[test]
    fn default_batched_sends_every_prompt_at_once() {
        struct Rendezvous {
            arrived: std::sync::Mutex<usize>,
            all_here: std::sync::Condvar,
        }
        impl HostFunctions for Rendezvous {
            fn llm_query(&self, prompt: &str, _: Option<&str>) -> HostResult<String> {
                let mut n = self.arrived.lock().unwrap();
                *n += 1;
                self.all_here.notify_all();
                let (n, timeout) =
                    self.all_here.wait_timeout_while(n, std::time::Duration::from_secs(30), |n| *n < 8).unwrap();
                if timeout.timed_out() {
                    return Err(format!("only {} of 8 calls were in flight together", *n));
                }
                Ok(prompt.to_string())
            }
        }
        let host = Rendezvous { arrived: std::sync::Mutex::new(0), all_here: std::sync::Condvar::new() };
        let prompts: Vec<String> = (0..8).map(|i| i.to_string()).collect();
        assert_eq!(host.llm_query_batched(&prompts, None, &[]).unwrap(), prompts);
    }

    #[test]
    fn a_batch_with_grammars_needs_one_per_prompt() {
        let host = EchoHost::default();
        let call = |grammars: Vec<String>| {
            serve(
                &host,
                &HostCall::LlmQueryBatched {
                    prompts: vec!["a".into(), "b".into()],
                    model: None,
                    grammars,
                    sources: vec![],
                },
            )
        };
        assert_eq!(
            call(vec!["root ::= \"x\"".into()]),
            CallOutcome::Error("1 grammars for 2 prompts: give one per prompt, or none".into())
        );
        assert!(matches!(call(vec!["root ::= \"x\"".into(); 2]), CallOutcome::Value(_)));
        assert!(matches!(call(vec![]), CallOutcome::Value(_)));
    }

    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<String>>);

    impl HostFunctions for Recorder {
        fn llm_query(&self, prompt: &str, _: Option<&str>) -> HostResult<String> {
            self.0.lock().unwrap().push(format!("llm_query {prompt}"));
            Ok(String::new())
        }

        fn note_sources(&self, call: &str, sources: &[Source]) {
            let shown: Vec<_> = sources.iter().map(|s| format!("{}:{}-{}", s.path, s.line_start, s.line_end)).collect();
            self.0.lock().unwrap().push(format!("{call} {}", shown.join(" ")));
        }
    }

    #[test]
    fn sources_are_noted_before_the_call_they_describe() {
        let src = |path: &str, a, b| Source { path: path.into(), line_start: a, line_end: b };
        let host = Recorder::default();
        serve(&host, &HostCall::LlmQuery { prompt: "p".into(), model: None, sources: vec![src("a.md", 1, 4)] });
        serve(&host, &HostCall::LlmQuery { prompt: "q".into(), model: None, sources: vec![] });
        // A batch: the union in prompt order, duplicates and malformed ranges dropped.
        let sources = vec![vec![src("b.md", 5, 9)], vec![], vec![src("a.md", 1, 4), src("b.md", 5, 9), src("c", 0, 3)]];
        serve(
            &host,
            &HostCall::LlmQueryBatched { prompts: vec!["x".into(); 3], model: None, grammars: vec![], sources },
        );
        let calls = host.0.into_inner().unwrap();
        let batched: Vec<_> = calls[3..].iter().map(String::as_str).collect();
        assert_eq!(calls[..3], ["llm_query a.md:1-4", "llm_query p", "llm_query q"]);
        assert_eq!(batched[0], "llm_query_batched b.md:5-9 a.md:1-4");
        assert_eq!(batched.len(), 4, "one note, then the three prompts: {batched:?}");
    }

    #[test]
    fn no_host_says_what_is_missing() {
        let out = serve(&NoHost, &HostCall::LlmQuery { prompt: "x".into(), model: None, sources: vec![] });
        assert!(matches!(out, CallOutcome::Error(e) if e.contains("llm_query is not available")));
    }
}
