//! One run's conversation with the root model and its REPL: every root call (turns, answer
//! probes, repairs, the last forced answer) and every execution goes through [`Run`], which
//! streams them as events and counts their tokens.

use quarry_llm::{ChatMessage, ChatRequest, Completion, DeltaSink, FinishReason, Sampling, Usage};
use quarry_repl::ReplResult;
use tokio::sync::mpsc::UnboundedReceiver;

use super::grammar::{FINAL_GRAMMAR, PROBE_GRAMMAR};
use super::prompts::{fill, sentences};
use super::repeats::is_syntax_error;
use super::reply::{RepetitionGuard, BLOCK_END};
use super::Rlm;
use crate::budget::StopReason;
use crate::parse::{parse_reply, FinalAnswer};
use crate::repl_thread::ReplThread;
use crate::trajectory::{AnswerSource, Event};
use crate::{CancelToken, Error, Result};

/// The state one run threads through its turns.
pub(super) struct Run {
    pub(super) repl: Option<ReplThread>,
    pub(super) rx: UnboundedReceiver<Event>,
    /// Code the host runs before the first turn, and again after the REPL restarts (which
    /// loses every variable): what the loop read off the question for the helpers.
    pub(super) setup: Option<String>,
    pub(super) feedback_chars: usize,
    pub(super) messages: Vec<ChatMessage>,
    pub(super) root_usage: Usage,
}

impl Run {
    pub(super) async fn root_turn<F: FnMut(&Event) + Send>(
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
    pub(super) async fn ask_root<F: FnMut(&Event) + Send>(
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
    pub(super) async fn ask_root_guarded<F: FnMut(&Event) + Send>(
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
    pub(super) async fn execute<F: FnMut(&Event) + Send>(
        &mut self,
        code: String,
        on_event: &mut F,
    ) -> Result<ReplResult> {
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
    pub(super) async fn run_setup(&mut self) -> Result<()> {
        let (Some(repl), Some(code)) = (self.repl.as_ref(), self.setup.clone()) else {
            return Ok(());
        };
        let result = repl.execute(code)?.await.map_err(|_| Error::Worker("the REPL thread died".into()))??;
        match result.error {
            Some(e) => Err(Error::Worker(format!("the REPL's setup failed: {e}"))),
            None => Ok(()),
        }
    }

    pub(super) async fn final_var<F: FnMut(&Event) + Send>(
        &mut self,
        name: &str,
        on_event: &mut F,
    ) -> Result<ReplResult> {
        // A JSON string literal is a valid Python string literal for any name a model writes.
        let literal = serde_json::to_string(name).expect("strings serialize");
        self.execute(format!("FINAL_VAR({literal})"), on_event).await
    }

    /// Asks, with code ruled out, whether what the model has seen answers the question. An
    /// answer stays in the conversation; a "no" is taken out of it.
    pub(super) async fn answer_probe<F: FnMut(&Event) + Send>(
        &mut self,
        rlm: &Rlm,
        cancel: &CancelToken,
        on_event: &mut F,
    ) -> Result<Option<FinalAnswer>> {
        self.messages.push(ChatMessage::user(sentences().answer_probe.clone()));
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
    pub(super) async fn repair<F: FnMut(&Event) + Send>(
        &mut self,
        rlm: &Rlm,
        code: &str,
        failed: &ReplResult,
        cancel: &CancelToken,
        on_event: &mut F,
    ) -> Result<Option<String>> {
        let say = sentences();
        let error = failed.error.as_deref().unwrap_or_default();
        let (system, ask, error) = if is_syntax_error(failed) {
            (&say.repair_syntax_system, &say.repair_syntax, error)
        } else {
            // A traceback's last line carries the fix; its frames are noise to a small model.
            (&say.repair_error_system, &say.repair_error, error.lines().last().unwrap_or(error))
        };
        let mut request = ChatRequest::new(vec![
            ChatMessage::system(system.clone()),
            ChatMessage::user(fill(ask, &[("code", code), ("error", error)])),
        ]);
        request.max_tokens = rlm.config.root_max_tokens;
        request.sampling = rlm.config.sampling.clone();
        let c = self.ask_root(rlm, &request, cancel, on_event).await?;
        let fixed = parse_reply(&c.text).blocks.into_iter().next().map(|b| b.code);
        Ok(fixed.filter(|f| f.trim() != code.trim() && !f.trim().is_empty()))
    }

    /// The `answer = {"content": ..., "ready": True}` convention: read only when `ready` is true.
    pub(super) async fn answer_variable<F: FnMut(&Event) + Send>(
        &mut self,
        on_event: &mut F,
    ) -> Result<Option<String>> {
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
    pub(super) async fn forced_answer<F: FnMut(&Event) + Send>(
        &mut self,
        rlm: &Rlm,
        stop: StopReason,
        question: &str,
        cancel: &CancelToken,
        on_event: &mut F,
    ) -> Result<Option<(String, AnswerSource)>> {
        self.messages.push(ChatMessage::user(fill(
            &sentences().forced_answer,
            &[("stop", stop.describe()), ("question", question)],
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
