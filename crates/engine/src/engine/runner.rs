//! The engine thread: models, contexts, slots, and the decode loop.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::mpsc as std_mpsc;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::{mpsc, oneshot};

use super::{Command, EngineConfig, GenerateRequest, GenerationEvent, LoadedModel, Prompt, ScoreRequest};
use crate::template::ChatTemplate;
use crate::text::Utf8Stream;
use crate::{Error, Result};
use quarry_llm::{CandidateScore, Completion, FinishReason, Scores, Timings, Usage};

pub(super) fn run(
    config: EngineConfig,
    rx: std_mpsc::Receiver<Command>,
    ready: std_mpsc::Sender<Result<Vec<LoadedModel>>>,
) {
    let backend = match crate::backend::backend() {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    // Narrow decode batches off tinyBLAS when batches run on one thread (see `kernels`).
    crate::kernels::configure(config.threads.batch);
    // Models live on this thread's stack for its whole life; contexts borrow them.
    let mut models = Vec::new();
    for spec in &config.models {
        let params = LlamaModelParams::default().with_n_gpu_layers(config.gpu_layers);
        match LlamaModel::load_from_file(backend, &spec.path, &params) {
            Ok(m) => models.push(m),
            Err(e) => {
                let _ = ready.send(Err(Error::Load {
                    path: spec.path.clone(),
                    message: format!(
                        "llama.cpp refused it ({e}); the architecture may be newer than this build supports"
                    ),
                }));
                return;
            }
        }
    }
    let mut runners = Vec::new();
    for (spec, model) in config.models.iter().zip(&models) {
        match Runner::new(spec.id.clone(), model, &config) {
            Ok(r) => runners.push(r),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        }
    }
    let loaded = config
        .models
        .iter()
        .zip(&runners)
        .map(|(spec, r)| LoadedModel {
            id: spec.id.clone(),
            path: spec.path.clone(),
            slots: r.slots.len(),
            ctx_per_slot: r.n_ctx_slot as u32,
            n_ctx_train: r.model.n_ctx_train(),
        })
        .collect();
    if ready.send(Ok(loaded)).is_err() {
        return;
    }

    let mut tick = 0u64;
    loop {
        let busy = runners.iter().any(Runner::has_work);
        // Idle: sleep until a command arrives. Busy: take what has arrived and keep decoding.
        let first = if busy {
            match rx.try_recv() {
                Ok(c) => Some(c),
                Err(std_mpsc::TryRecvError::Empty) => None,
                Err(std_mpsc::TryRecvError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(c) => Some(c),
                Err(_) => return,
            }
        };
        if let Some(command) = first {
            handle(command, &mut runners);
            while let Ok(command) = rx.try_recv() {
                handle(command, &mut runners);
            }
        }
        for runner in &mut runners {
            tick += 1;
            runner.step(tick);
        }
    }
}

fn pick<'a, 'm>(runners: &'a mut [Runner<'m>], model: Option<&str>) -> Result<&'a mut Runner<'m>> {
    match model {
        None if runners.len() == 1 => Ok(&mut runners[0]),
        None => Err(Error::InvalidRequest(format!(
            "several models are loaded ({}); name one in the request's `model` field",
            runners.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(", ")
        ))),
        Some(id) => {
            // A single loaded model answers to any name, as llama-server does.
            let only = runners.len() == 1;
            let loaded = runners.iter().map(|r| r.id.clone()).collect::<Vec<_>>().join(", ");
            runners
                .iter_mut()
                .enumerate()
                .find(|(_, r)| r.id == id || only)
                .map(|(_, r)| r)
                .ok_or_else(|| Error::UnknownModel { id: id.to_string(), loaded })
        }
    }
}

fn handle(command: Command, runners: &mut [Runner<'_>]) {
    match command {
        Command::Generate(request, events) => match pick(runners, request.model.as_deref()) {
            Ok(r) => r.enqueue(request, events),
            Err(e) => {
                let _ = events.send(GenerationEvent::Error(e));
            }
        },
        Command::Score(request, reply) => match pick(runners, request.model.as_deref()) {
            Ok(r) => r.enqueue_score(request, reply),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        },
        Command::Tokenize { model, text, reply } => {
            let _ = reply
                .send(pick(runners, model.as_deref()).map(|r| {
                    r.model.vocab().tokenize(text.as_bytes(), false, true).into_iter().map(|t| t.0).collect()
                }));
        }
        Command::Render { model, messages, reply } => {
            let _ = reply.send(pick(runners, model.as_deref()).and_then(|r| r.template()?.render(&messages, true)));
        }
    }
}

/// One model: its context, its slots and the requests waiting for one.
struct Runner<'m> {
    id: String,
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    template: Option<ChatTemplate>,
    batch: LlamaBatch<'static>,
    n_batch: usize,
    n_ctx_slot: usize,
    slots: Vec<Slot>,
    queue: VecDeque<Queued>,
}

struct Slot {
    seq: i32,
    /// Tokens whose keys and values are in the KV cache for this sequence, in order.
    cache: Vec<LlamaToken>,
    /// Generating, or scoring, or neither (free): never both.
    active: Option<Active>,
    scoring: Option<Scoring>,
    last_used: u64,
}

impl Slot {
    fn is_free(&self) -> bool {
        self.active.is_none() && self.scoring.is_none()
    }

    /// Drops what the KV cache holds past `len` tokens. Returns false where the architecture
    /// cannot drop a suffix (recurrent models): then the whole sequence is gone.
    fn truncate(&mut self, ctx: &mut LlamaContext<'_>, len: usize) -> bool {
        if len >= self.cache.len() {
            return true;
        }
        if matches!(ctx.clear_kv_cache_seq(Some(self.seq as u32), Some(len as u32), None), Ok(true)) {
            self.cache.truncate(len);
            true
        } else {
            let _ = ctx.clear_kv_cache_seq(Some(self.seq as u32), None, None);
            self.cache.clear();
            false
        }
    }
}

/// A request waiting for a slot.
enum Queued {
    Generate(Pending),
    Score(PendingScore),
}

impl Queued {
    fn tokens(&self) -> &[LlamaToken] {
        match self {
            Queued::Generate(p) => &p.tokens,
            Queued::Score(p) => &p.prompt,
        }
    }

    fn cancelled(&self) -> bool {
        match self {
            Queued::Generate(p) => p.events.is_closed(),
            Queued::Score(p) => p.reply.is_closed(),
        }
    }

    fn cache_prompt(&self) -> bool {
        match self {
            Queued::Generate(p) => p.request.cache_prompt,
            Queued::Score(_) => true,
        }
    }
}

struct PendingScore {
    prompt: Vec<LlamaToken>,
    candidates: Vec<Vec<LlamaToken>>,
    reply: oneshot::Sender<crate::Result<Scores>>,
    received: Instant,
}

/// A slot scoring candidates: first the prompt (whose last logits give every candidate's first
/// token), then each candidate longer than one token after it, the cache cut back to the prompt
/// in between. Each candidate costs its length minus one; the prompt is evaluated once.
struct Scoring {
    reply: oneshot::Sender<crate::Result<Scores>>,
    prompt: Vec<LlamaToken>,
    candidates: Vec<Vec<LlamaToken>>,
    /// The candidate being evaluated; `None` while the prompt is.
    current: Option<usize>,
    /// Tokens to evaluate, and per token the (candidate, token) pairs its logits predict.
    pending: Vec<LlamaToken>,
    targets: Vec<Vec<(usize, LlamaToken)>>,
    /// This step's batch positions whose logits to read, with their targets.
    in_batch: Vec<(i32, Vec<(usize, LlamaToken)>)>,
    logprob: Vec<f64>,
    first: Vec<f64>,
    evaluated: usize,
    cached_tokens: usize,
    received: Instant,
    started: Instant,
    prompt_done: Option<Instant>,
}

impl Scoring {
    /// Moves on to the next candidate that needs tokens evaluated, cutting the cache back to the
    /// prompt; returns false when every candidate is scored.
    fn advance(&mut self, slot: &mut Slot, ctx: &mut LlamaContext<'_>) -> bool {
        let mut next = self.current.map_or(0, |k| k + 1);
        while let Some(c) = self.candidates.get(next) {
            if c.len() > 1 {
                self.current = Some(next);
                let mut replay = Vec::new();
                if !slot.truncate(ctx, self.prompt.len()) {
                    // The prompt is gone with the suffix: evaluate it again, reading nothing.
                    replay = self.prompt.clone();
                }
                let lead = replay.len();
                self.pending = replay;
                self.pending.extend_from_slice(&c[..c.len() - 1]);
                self.targets = vec![Vec::new(); lead];
                self.targets.extend(c[1..].iter().map(|&t| vec![(next, t)]));
                return true;
            }
            next += 1;
        }
        self.current = Some(next);
        false
    }
}

/// A request with its prompt tokenized, waiting for a slot.
struct Pending {
    request: GenerateRequest,
    tokens: Vec<LlamaToken>,
    sampler: Picker,
    events: mpsc::UnboundedSender<GenerationEvent>,
    received: Instant,
}

struct Active {
    events: mpsc::UnboundedSender<GenerationEvent>,
    sampler: Picker,
    out: Utf8Stream,
    /// Prompt tokens not yet evaluated.
    pending: Vec<LlamaToken>,
    prompt_tokens: usize,
    cached_tokens: usize,
    generated: usize,
    max_tokens: usize,
    ignore_eos: bool,
    /// The sampled token waiting to be decoded (generation phase).
    next: Option<LlamaToken>,
    /// Index in this step's batch whose logits to sample from.
    logits_at: Option<i32>,
    received: Instant,
    started: Instant,
    prompt_done: Option<Instant>,
    first_text: Option<Instant>,
}

impl<'m> Runner<'m> {
    fn new(id: String, model: &'m LlamaModel, config: &EngineConfig) -> Result<Runner<'m>> {
        let slots = config.slots.max(1);
        let n_ctx_slot = (config.ctx_per_slot as usize).min(model.n_ctx_train() as usize).max(256);
        let n_batch = (config.n_batch as usize).max(32);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new((n_ctx_slot * slots) as u32))
            .with_n_seq_max(slots as u32)
            // One KV buffer shared by all slots: with a buffer per sequence llama.cpp splits a
            // multi-sequence batch into one pass per sequence, and batching gains nothing.
            .with_kv_unified(true)
            .with_n_batch(n_batch as u32)
            .with_n_ubatch(n_batch as u32)
            .with_n_threads(config.threads.decode.max(1) as i32)
            .with_n_threads_batch(config.threads.batch.max(1) as i32);
        let ctx = model.new_context(crate::backend::backend()?, params).map_err(|e| {
            Error::Generation(format!("could not create a context of {slots} × {n_ctx_slot} tokens for {id} ({e})"))
        })?;
        let template = model.meta_val_str("tokenizer.chat_template").ok().map(|src| {
            let piece = |t| String::from_utf8_lossy(&model.vocab().token_to_piece(t, true, None)).into_owned();
            ChatTemplate::new(id.clone(), src, piece(model.vocab().bos()), piece(model.vocab().eos()))
        });
        Ok(Runner {
            id,
            model,
            ctx,
            template,
            batch: LlamaBatch::new(n_batch, slots as i32),
            n_batch,
            n_ctx_slot,
            slots: (0..slots)
                .map(|i| Slot { seq: i as i32, cache: Vec::new(), active: None, scoring: None, last_used: 0 })
                .collect(),
            queue: VecDeque::new(),
        })
    }

    fn template(&self) -> Result<&ChatTemplate> {
        self.template.as_ref().ok_or_else(|| Error::Template {
            model: self.id.clone(),
            message: "the GGUF file has no tokenizer.chat_template".into(),
        })
    }

    fn has_work(&self) -> bool {
        !self.queue.is_empty() || self.slots.iter().any(|s| !s.is_free())
    }

    fn prompt_tokens(&self, prompt: &Prompt) -> Result<Vec<LlamaToken>> {
        let vocab = self.model.vocab();
        match prompt {
            Prompt::Chat(messages) => self
                .template()
                .and_then(|t| t.render(messages, true))
                .map(|text| vocab.tokenize(text.as_bytes(), false, true)),
            Prompt::Text(text) => Ok(vocab.tokenize(text.as_bytes(), vocab.should_add_bos(), true)),
            Prompt::Tokens(ids) => {
                let n = vocab.n_tokens();
                match ids.iter().find(|&&t| t < 0 || t >= n) {
                    Some(bad) => {
                        Err(Error::InvalidRequest(format!("token id {bad} is outside the vocabulary (0..{n})")))
                    }
                    None => Ok(ids.iter().map(|&t| LlamaToken(t)).collect()),
                }
            }
        }
    }

    fn enqueue(&mut self, request: GenerateRequest, events: mpsc::UnboundedSender<GenerationEvent>) {
        let received = Instant::now();
        match self.prompt_tokens(&request.prompt) {
            Ok(tokens) if tokens.is_empty() => {
                let _ = events.send(GenerationEvent::Error(Error::InvalidRequest("the prompt is empty".into())));
            }
            Ok(tokens) if tokens.len() >= self.n_ctx_slot => {
                let _ = events
                    .send(GenerationEvent::Error(Error::PromptTooLong { prompt: tokens.len(), ctx: self.n_ctx_slot }));
            }
            Ok(tokens) => match sampler(self.model, &request) {
                Ok(sampler) => {
                    let _ = events.send(GenerationEvent::Accepted);
                    self.queue.push_back(Queued::Generate(Pending { request, tokens, sampler, events, received }))
                }
                Err(e) => {
                    let _ = events.send(GenerationEvent::Error(e));
                }
            },
            Err(e) => {
                let _ = events.send(GenerationEvent::Error(e));
            }
        }
    }

    /// Scoring requests are checked like prompts: every candidate must be text, and the prompt
    /// with the longest candidate must fit the slot.
    fn enqueue_score(&mut self, request: ScoreRequest, reply: oneshot::Sender<crate::Result<Scores>>) {
        let received = Instant::now();
        let checked = self.prompt_tokens(&request.prompt).and_then(|prompt| {
            if prompt.is_empty() {
                return Err(Error::InvalidRequest("the prompt is empty".into()));
            }
            if request.candidates.is_empty() {
                return Err(Error::InvalidRequest(
                    "`candidates` is empty: give at least one continuation to score".into(),
                ));
            }
            let vocab = self.model.vocab();
            let mut candidates = Vec::new();
            for (i, c) in request.candidates.iter().enumerate() {
                let tokens = vocab.tokenize(c.as_bytes(), false, false);
                if tokens.is_empty() {
                    return Err(Error::InvalidRequest(format!("candidate {i} is empty")));
                }
                candidates.push(tokens);
            }
            let longest = candidates.iter().map(Vec::len).max().unwrap_or(0);
            if prompt.len() + longest >= self.n_ctx_slot {
                return Err(Error::PromptTooLong { prompt: prompt.len() + longest, ctx: self.n_ctx_slot });
            }
            Ok((prompt, candidates))
        });
        match checked {
            Ok((prompt, candidates)) => {
                self.queue.push_back(Queued::Score(PendingScore { prompt, candidates, reply, received }))
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Gives queued requests free slots: the slot whose cache shares the longest prefix with the
    /// prompt, ties going to the least recently used.
    fn admit(&mut self, tick: u64) {
        while let Some(p) = self.queue.front() {
            if p.cancelled() {
                self.queue.pop_front();
                continue;
            }
            let best = self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_free())
                .map(|(i, s)| (i, if p.cache_prompt() { common_prefix(&s.cache, p.tokens()) } else { 0 }, s.last_used))
                .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)));
            let Some((index, lcp, _)) = best else { return };
            let queued = self.queue.pop_front().expect("front exists");
            // At least one prompt token must be evaluated to have logits to read.
            let keep = lcp.min(queued.tokens().len() - 1);
            let slot = &mut self.slots[index];
            slot.truncate(&mut self.ctx, keep);
            // (Where a suffix cannot be dropped the slot starts over: `truncate` cleared it.)
            let keep = slot.cache.len();
            slot.last_used = tick;
            let p = match queued {
                Queued::Generate(p) => p,
                Queued::Score(p) => {
                    let n = p.candidates.len();
                    let last = p.prompt.len() - 1;
                    let mut targets = vec![Vec::new(); p.prompt.len() - keep];
                    targets[last - keep] = p.candidates.iter().enumerate().map(|(k, c)| (k, c[0])).collect();
                    slot.scoring = Some(Scoring {
                        pending: p.prompt[keep..].to_vec(),
                        targets,
                        prompt: p.prompt,
                        candidates: p.candidates,
                        current: None,
                        in_batch: Vec::new(),
                        logprob: vec![0.0; n],
                        first: vec![0.0; n],
                        evaluated: 0,
                        cached_tokens: keep,
                        reply: p.reply,
                        received: p.received,
                        started: Instant::now(),
                        prompt_done: None,
                    });
                    continue;
                }
            };
            let sampler = p.sampler;
            let max_tokens = p.request.max_tokens.unwrap_or(usize::MAX).min(self.n_ctx_slot - p.tokens.len());
            slot.active = Some(Active {
                events: p.events,
                sampler,
                out: Utf8Stream::new(p.request.stop.clone()),
                pending: p.tokens[keep..].to_vec(),
                prompt_tokens: p.tokens.len(),
                cached_tokens: keep,
                generated: 0,
                max_tokens,
                ignore_eos: p.request.ignore_eos,
                next: None,
                logits_at: None,
                received: p.received,
                started: Instant::now(),
                prompt_done: None,
                first_text: None,
            });
        }
    }

    /// One decode step for this model. Returns whether it did any work.
    fn step(&mut self, tick: u64) -> bool {
        // A request whose receiver is gone was cancelled: free its slot (its cache stays valid).
        for slot in &mut self.slots {
            if slot.active.as_ref().is_some_and(|a| a.events.is_closed()) {
                slot.active = None;
            }
            if slot.scoring.as_ref().is_some_and(|s| s.reply.is_closed()) {
                slot.scoring = None;
            }
        }
        self.admit(tick);
        if self.slots.iter().all(Slot::is_free) {
            return false;
        }

        self.batch.clear();
        let mut n = 0i32;
        // Generating slots first: one token each, so streams keep flowing under prompt load.
        for slot in &mut self.slots {
            let Some(a) = slot.active.as_mut() else { continue };
            if let Some(token) = a.next {
                if self.batch.add(token, slot.cache.len() as i32, &[slot.seq], true).is_ok() {
                    a.logits_at = Some(n);
                    n += 1;
                }
            }
        }
        // Then prompt chunks, oldest request first, in what room the batch has left.
        // Scoring slots take their turn with the prompts: all they do is evaluate tokens.
        let mut order: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                let s = &self.slots[i];
                s.active.as_ref().is_some_and(|a| a.next.is_none()) || s.scoring.is_some()
            })
            .collect();
        order.sort_by_key(|&i| {
            let s = &self.slots[i];
            s.active.as_ref().map(|a| a.started).or(s.scoring.as_ref().map(|s| s.started))
        });
        for i in order {
            let room = self.n_batch.saturating_sub(n as usize);
            if room == 0 {
                break;
            }
            let slot = &mut self.slots[i];
            if let Some(s) = slot.scoring.as_mut() {
                let take = room.min(s.pending.len());
                for (j, targets) in s.targets.drain(..take).enumerate() {
                    let read = !targets.is_empty();
                    let _ = self.batch.add(s.pending[j], (slot.cache.len() + j) as i32, &[slot.seq], read);
                    if read {
                        s.in_batch.push((n + j as i32, targets));
                    }
                }
                slot.cache.extend(s.pending.drain(..take));
                s.evaluated += take;
                n += take as i32;
                continue;
            }
            let a = slot.active.as_mut().expect("filtered above");
            let take = room.min(a.pending.len());
            let finishes = take == a.pending.len();
            for (j, &token) in a.pending[..take].iter().enumerate() {
                let last = finishes && j + 1 == take;
                let _ = self.batch.add(token, (slot.cache.len() + j) as i32, &[slot.seq], last);
            }
            slot.cache.extend(a.pending.drain(..take));
            n += take as i32;
            if finishes {
                a.logits_at = Some(n - 1);
            }
        }
        if n == 0 {
            return false;
        }

        if let Err(e) = self.ctx.decode(&mut self.batch) {
            // The batch is lost: fail the requests in it and forget their slots' caches.
            let failed = || Error::Generation(format!("decoding failed ({e})"));
            for slot in &mut self.slots {
                let was_busy = !slot.is_free();
                if let Some(a) = slot.active.take() {
                    let _ = a.events.send(GenerationEvent::Error(failed()));
                }
                if let Some(s) = slot.scoring.take() {
                    let _ = s.reply.send(Err(failed()));
                }
                if was_busy {
                    let _ = self.ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
                    slot.cache.clear();
                }
            }
            return true;
        }
        self.read_scores();

        let vocab = self.model.vocab();
        for slot in &mut self.slots {
            let Some(a) = slot.active.as_mut() else { continue };
            let Some(at) = a.logits_at.take() else { continue };
            if let Some(decoded) = a.next.take() {
                slot.cache.push(decoded);
            } else {
                a.prompt_done = Some(Instant::now());
            }
            let token = a.sampler.pick(&self.ctx, at);
            a.generated += 1;
            let mut finish = None;
            if vocab.is_eog(token) && !a.ignore_eos {
                finish = Some(FinishReason::Stop);
            } else {
                let (fresh, stopped) = a.out.push(&vocab.token_to_piece(token, false, None));
                if !fresh.is_empty() {
                    a.first_text.get_or_insert_with(Instant::now);
                    if a.events.send(GenerationEvent::Text(fresh)).is_err() {
                        finish = Some(FinishReason::Cancelled);
                    }
                }
                if finish.is_none() {
                    if stopped {
                        finish = Some(FinishReason::Stop);
                    } else if a.generated >= a.max_tokens || slot.cache.len() + 1 >= self.n_ctx_slot {
                        finish = Some(FinishReason::Length);
                    } else {
                        a.next = Some(token);
                    }
                }
            }
            if let Some(reason) = finish {
                let mut a = slot.active.take().expect("active");
                if reason == FinishReason::Length {
                    let rest = a.out.flush();
                    if !rest.is_empty() {
                        let _ = a.events.send(GenerationEvent::Text(rest));
                    }
                }
                let now = Instant::now();
                let prompt_done = a.prompt_done.unwrap_or(now);
                let completion = Completion {
                    text: std::mem::take(&mut a.out.text),
                    finish_reason: reason,
                    usage: Usage {
                        prompt_tokens: a.prompt_tokens,
                        cached_tokens: a.cached_tokens,
                        completion_tokens: a.generated,
                    },
                    timings: Timings {
                        prompt_ms: ms(prompt_done - a.started),
                        generation_ms: ms(now - prompt_done),
                        ttft_ms: ms(a.first_text.unwrap_or(now) - a.received),
                    },
                    model: self.id.clone(),
                };
                let _ = a.events.send(GenerationEvent::Done(completion));
            }
        }
        true
    }
}

impl Runner<'_> {
    /// After a decode: adds the log-probabilities scoring slots asked for, moves each on to its
    /// next candidate, and answers the finished ones (their caches cut back to the prompt, which
    /// the next item's instruction prefix shares).
    fn read_scores(&mut self) {
        for slot in &mut self.slots {
            let Some(mut s) = slot.scoring.take() else { continue };
            for (at, targets) in s.in_batch.drain(..) {
                let logits = self.ctx.get_logits_ith(at);
                let lse = log_sum_exp(logits);
                for (k, token) in targets {
                    let lp = f64::from(logits[token.0 as usize]) - lse;
                    s.logprob[k] += lp;
                    if s.current.is_none() {
                        s.first[k] = lp;
                    }
                }
            }
            if !s.pending.is_empty() {
                slot.scoring = Some(s);
                continue;
            }
            if s.current.is_none() {
                s.prompt_done = Some(Instant::now());
            }
            if s.advance(slot, &mut self.ctx) {
                slot.scoring = Some(s);
                continue;
            }
            slot.truncate(&mut self.ctx, s.prompt.len());
            let now = Instant::now();
            let prompt_done = s.prompt_done.unwrap_or(now);
            let scores = Scores {
                candidates: (0..s.candidates.len())
                    .map(|k| CandidateScore {
                        logprob: s.logprob[k],
                        first_logprob: s.first[k],
                        tokens: s.candidates[k].len(),
                    })
                    .collect(),
                usage: Usage {
                    prompt_tokens: s.cached_tokens + s.evaluated,
                    cached_tokens: s.cached_tokens,
                    completion_tokens: 0,
                },
                timings: Timings {
                    prompt_ms: ms(prompt_done - s.started),
                    generation_ms: ms(now - prompt_done),
                    ttft_ms: ms(now - s.received),
                },
                model: self.id.clone(),
            };
            let _ = s.reply.send(Ok(scores));
        }
    }
}

/// log Σ exp(x), computed stably (the vocabulary is ~150k logits).
fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    f64::from(max) + sum.ln()
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// How a slot picks its next token.
enum Picker {
    /// Plain greedy decoding: the argmax of the logits, read directly. llama.cpp's sampler API
    /// copies all ~150k candidates into a fresh array for every token, which is a measurable
    /// share of a small model's generation time on a CPU.
    Argmax,
    Chain(LlamaSampler),
}

impl Picker {
    fn pick(&mut self, ctx: &LlamaContext<'_>, at: i32) -> LlamaToken {
        match self {
            Picker::Chain(s) => s.sample(ctx, at),
            Picker::Argmax => {
                let logits = ctx.get_logits_ith(at);
                let mut best = 0;
                for (i, &l) in logits.iter().enumerate() {
                    if l > logits[best] {
                        best = i;
                    }
                }
                LlamaToken(best as i32)
            }
        }
    }
}

/// How a request picks tokens: the argmax fast path, or the shared sampler chain behind the
/// request's grammar (a JSON schema becomes a grammar through llama.cpp's own converter).
fn sampler(model: &LlamaModel, request: &GenerateRequest) -> Result<Picker> {
    let s = &request.sampling;
    let grammar =
        match (&request.constraint.grammar, &request.constraint.json_schema) {
            (Some(g), _) => Some(g.clone()),
            (None, Some(schema)) => Some(llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| {
                Error::InvalidRequest(format!("the JSON schema could not be turned into a grammar ({e})"))
            })?),
            (None, None) => None,
        };
    if s.temperature <= 0.0 && s.repeat_penalty == 1.0 && grammar.is_none() {
        return Ok(Picker::Argmax);
    }
    Ok(Picker::Chain(crate::backend::sampler_chain(model, s, grammar.as_deref())?))
}
