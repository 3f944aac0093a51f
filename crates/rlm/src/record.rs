//! Writing a run to the history ([`quarry_index::History`]) as it happens: the one recorder
//! `quarry ask` and the window's Ask both use, so a run looks the same in the history whichever
//! asked it.
//!
//! The run's row is written `running` before its first event, and each event as it comes, so a
//! process killed half-way leaves everything up to its last step, shown as interrupted. The
//! root model's text streams as one [`Event::ModelDelta`] per token; those are joined into one
//! event per half second (or per step) rather than stored a row per token, and joining them
//! again gives the same text.
//!
//! ```no_run
//! # async fn demo(analyst: quarry_rlm::Analyst, folder: quarry_index::Folder) -> anyhow::Result<()> {
//! use quarry_index::history::{History, NewRun};
//! use quarry_rlm::{CancelToken, Mode, Recorder};
//! let question = "What is the notice period?";
//! let mut recorder = Recorder::start(History::open_default()?, &NewRun::new(question, "rlm", folder.root()))?;
//! let answer = analyst.answer(&folder, question, Mode::Rlm, CancelToken::default(), |e| recorder.record(e)).await;
//! let id = recorder.finish(answer.as_ref().map_err(|e| e.to_string()))?;
//! println!("saved as run {id}");
//! # Ok(())
//! # }
//! ```

use std::time::{Duration, Instant};

use quarry_index::history::{Finish, History, NewRun, RunStatus};
use serde_json::{json, Value};

use crate::analyst::Answer;
use crate::budget::StopReason;
use crate::trajectory::Event;

/// How long streamed text waits before it is written: short enough that a kill loses little,
/// long enough that a run is a few hundred rows, not one per token.
const DELTA_FLUSH: Duration = Duration::from_millis(500);

/// Records one run in the history.
pub struct Recorder {
    history: History,
    id: i64,
    /// Streamed text not written yet.
    delta: String,
    since: Instant,
    /// The first failure to write an event: the run goes on (a full disk must not cost the
    /// answer), and [`Recorder::finish`] reports it.
    error: Option<quarry_index::Error>,
    finished: bool,
}

impl Recorder {
    /// Records that `run` started.
    pub fn start(history: History, run: &NewRun) -> quarry_index::Result<Recorder> {
        let id = history.start(run)?;
        Ok(Recorder { history, id, delta: String::new(), since: Instant::now(), error: None, finished: false })
    }

    /// The run's id in the history.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Records one event of the run. Never fails the run: a write that fails is reported by
    /// [`Recorder::finish`].
    pub fn record(&mut self, event: &Event) {
        if let Event::ModelDelta { text } = event {
            self.delta.push_str(text);
            if self.since.elapsed() >= DELTA_FLUSH {
                self.write(None);
            }
            return;
        }
        self.write(Some(event));
    }

    /// Writes the streamed text held back, then `event`, in one transaction.
    fn write(&mut self, event: Option<&Event>) {
        let mut lines = Vec::with_capacity(2);
        if !self.delta.is_empty() {
            let delta = Event::ModelDelta { text: std::mem::take(&mut self.delta) };
            lines.extend(serde_json::to_string(&delta).ok());
        }
        lines.extend(event.and_then(|e| serde_json::to_string(e).ok()));
        self.since = Instant::now();
        if let Err(e) = self.history.append(self.id, &lines) {
            tracing::warn!(run = self.id, "could not record an event of the run: {e}");
            self.error.get_or_insert(e);
        }
    }

    /// Records how the run ended: its answer, citations and statistics, or the error that ended
    /// it. Returns the run's id, or the first failure to record it.
    pub fn finish(mut self, outcome: Result<&Answer, String>) -> quarry_index::Result<i64> {
        self.write(None);
        self.finished = true;
        let finish = match outcome {
            Ok(a) => Finish {
                status: if a.stop_reason == StopReason::Cancelled { RunStatus::Cancelled } else { RunStatus::Done },
                answer: a.answer.clone(),
                citations: serde_json::to_value(&a.citations).unwrap_or(Value::Array(Vec::new())),
                stats: json!({
                    "mode": a.mode,
                    "stop_reason": a.stop_reason,
                    "iterations": a.iterations,
                    "sub_calls": a.sub_calls,
                    "seconds": a.seconds,
                    "usage": a.usage,
                    "notices": a.notices,
                }),
                error: None,
            },
            Err(message) => Finish {
                status: RunStatus::Failed,
                answer: None,
                citations: Value::Array(Vec::new()),
                stats: json!({}),
                error: Some(message),
            },
        };
        let finished = self.history.finish(self.id, &finish);
        match self.error.take() {
            Some(e) => Err(e),
            None => finished.map(|()| self.id),
        }
    }
}

impl Drop for Recorder {
    /// A run dropped before [`Recorder::finish`] (its future cancelled, a panic) would stay
    /// `running` for as long as this process lives: it is marked interrupted instead.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.write(None);
        let finish = Finish {
            status: RunStatus::Interrupted,
            answer: None,
            citations: Value::Array(Vec::new()),
            stats: json!({}),
            error: Some("the run was abandoned before it ended".into()),
        };
        if let Err(e) = self.history.finish(self.id, &finish) {
            tracing::warn!(run = self.id, "could not record that the run was abandoned: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyst::Mode;
    use crate::cite::{Check, Citation, Status};
    use quarry_index::history::ListFilter;
    use quarry_llm::Usage;
    use quarry_repl::ReplResult;

    fn history(dir: &std::path::Path) -> History {
        History::open_in(dir).unwrap()
    }

    /// What an RLM run streams, in order, as the loop sends it.
    fn script() -> Vec<Event> {
        let mut events = vec![
            Event::RunStarted {
                question: "What is the code?".into(),
                root_model: "root".into(),
                sub_model: "sub".into(),
                context: "1 file".into(),
            },
            Event::IterationStarted { index: 1 },
        ];
        for piece in ["```repl\n", "print(grep('code'))", "\n```"] {
            events.push(Event::ModelDelta { text: piece.into() });
        }
        events.extend([
            Event::CodeBlock { iteration: 1, index: 1, code: "print(grep('code'))".into() },
            Event::SubCallStarted { id: 0, prompt_preview: "p".into(), prompt_chars: 1 },
            Event::SubCallFinished {
                id: 0,
                ok: true,
                response_preview: "r".into(),
                usage: Usage::default(),
                seconds: 0.1,
            },
            Event::ReplResult {
                iteration: 1,
                index: 1,
                result: ReplResult { stdout: "memo.txt:2: the code is 7391".into(), ..Default::default() },
            },
            Event::IterationStarted { index: 2 },
            Event::ModelDelta { text: "FINAL(7391)".into() },
            Event::Answer { text: "The code is 7391 (memo.txt:2).".into(), source: crate::AnswerSource::Prose },
            Event::Final { stop_reason: StopReason::Final, iterations: 2, sub_calls: 1, seconds: 1.5 },
        ]);
        events
    }

    fn answer(stop_reason: StopReason) -> Answer {
        Answer {
            mode: Mode::Rlm,
            answer: Some("The code is 7391 (memo.txt:2).".into()),
            citations: vec![Citation {
                path: "memo.txt".into(),
                line_start: 2,
                line_end: 2,
                page: None,
                page_label: None,
                location: "memo.txt:2".into(),
                verified: true,
                status: Status::Verified,
                check: Check::Numbers,
                problem: None,
                found: false,
            }],
            iterations: 2,
            sub_calls: 1,
            stop_reason,
            seconds: 1.5,
            usage: Usage::default(),
            notices: Vec::new(),
            trajectory: None,
        }
    }

    #[test]
    fn a_scripted_run_is_recorded_event_for_event_with_deltas_joined() {
        let dir = tempfile::tempdir().unwrap();
        let mut recorder =
            Recorder::start(history(dir.path()), &NewRun::new("What is the code?", "rlm", dir.path())).unwrap();
        let id = recorder.id();
        let script = script();
        for e in &script {
            recorder.record(e);
        }
        // Written as it happens: another reader sees the run running, its events so far there.
        let live = history(dir.path()).get(id).unwrap();
        assert_eq!(live.status, RunStatus::Running);
        assert_eq!(live.events.last().unwrap()["type"], "final");
        assert_eq!(recorder.finish(Ok(&answer(StopReason::Final))).unwrap(), id);

        let run = history(dir.path()).get(id).unwrap();
        assert_eq!(run.status, RunStatus::Done);
        assert_eq!(run.answer.as_deref(), Some("The code is 7391 (memo.txt:2)."));
        assert_eq!(run.citations[0]["location"], "memo.txt:2");
        assert_eq!(run.citations[0]["status"], "verified");
        assert_eq!((run.stats["stop_reason"].as_str(), run.stats["iterations"].as_u64()), (Some("final"), Some(2)));
        // Every event but the deltas, as sent; the three deltas of turn 1 as one, same text.
        let stored: Vec<Event> = run.events.iter().map(|e| serde_json::from_value(e.clone()).unwrap()).collect();
        let not_deltas = |es: &[Event]| -> Vec<Event> {
            es.iter().filter(|e| !matches!(e, Event::ModelDelta { .. })).cloned().collect()
        };
        assert_eq!(not_deltas(&stored), not_deltas(&script));
        let deltas: Vec<&str> = stored
            .iter()
            .filter_map(|e| match e {
                Event::ModelDelta { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deltas, ["```repl\nprint(grep('code'))\n```", "FINAL(7391)"]);
        assert_eq!(stored.len(), script.len() - 2);
    }

    #[test]
    fn cancelled_failed_and_abandoned_runs_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let start = |q: &str| Recorder::start(history(dir.path()), &NewRun::new(q, "rlm", dir.path())).unwrap();

        let cancelled = start("cancelled?");
        let mut a = answer(StopReason::Cancelled);
        a.answer = None;
        let cancelled = cancelled.finish(Ok(&a)).unwrap();

        let failed = start("failed?").finish(Err("the engine died".into())).unwrap();

        let mut abandoned = start("abandoned?");
        abandoned.record(&Event::ModelDelta { text: "half a repl".into() });
        let abandoned_id = abandoned.id();
        drop(abandoned);

        let h = history(dir.path());
        assert_eq!(h.get(cancelled).unwrap().status, RunStatus::Cancelled);
        let f = h.get(failed).unwrap();
        assert_eq!((f.status, f.error.as_deref()), (RunStatus::Failed, Some("the engine died")));
        let d = h.get(abandoned_id).unwrap();
        assert_eq!(d.status, RunStatus::Interrupted);
        assert_eq!(d.events, [json!({"type": "model_delta", "text": "half a repl"})], "the text so far is kept");
        let listed: Vec<i64> = h.list(&ListFilter::default()).unwrap().iter().map(|r| r.id).collect();
        assert_eq!(listed, [abandoned_id, failed, cancelled], "newest first");
    }
}
