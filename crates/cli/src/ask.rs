//! `quarry ask`: answer a question about a folder.
//!
//! Until the RLM loop lands this runs the direct mode: the folder (as much as fits) goes into
//! the model's window and the answer streams back. Progress goes to stderr, the answer to
//! stdout, so `quarry ask ... > answer.txt` captures just the answer.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use quarry_index::Folder;
use quarry_llm::local::{default_threads, FinishReason, GenerateOptions, LoadOptions, LocalModel, TokenSink};
use quarry_llm::{ModelStore, Role};
use quarry_rlm::direct::DirectPrompt;

use crate::models::cancel_on_ctrl_c;
use crate::progress::{Bars, Unit};
use quarry_llm::Progress;

#[derive(Args)]
pub struct AskArgs {
    /// The folder to analyse.
    #[arg(long)]
    folder: PathBuf,
    /// The question.
    question: String,
    /// Catalog id or path of a GGUF file (default: the catalog's default root model).
    #[arg(long)]
    model: Option<String>,
    /// Context window in tokens; the folder is cut to fit it.
    #[arg(long, default_value_t = 8192)]
    ctx: usize,
    /// Longest answer in tokens.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// CPU threads (default: physical cores − 1).
    #[arg(long)]
    threads: Option<usize>,
    /// Layers to offload to a GPU, on GPU builds.
    #[arg(long, default_value_t = 0)]
    gpu_layers: u32,
    /// Print one JSON object with the answer and its statistics instead of streaming text.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: AskArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let store = ModelStore::from_env();
    let catalog = store.catalog()?;
    let model_ref = args.model.clone().unwrap_or_else(|| catalog.default_for(Role::Root).id.clone());
    let model_path = store.resolve(&model_ref)?;

    let folder = Folder::load(&args.folder)?;
    eprintln!(
        "Reading {}: {} files, {} characters{}",
        args.folder.display(),
        folder.documents().len(),
        folder.total_chars(),
        if folder.skipped().is_empty() { String::new() } else { format!(" ({} skipped)", folder.skipped().len()) }
    );
    for s in folder.skipped() {
        eprintln!("  skipped {}: {}", s.path, s.reason);
    }

    let threads = args.threads.unwrap_or_else(default_threads);
    eprintln!("Loading {model_ref} ({threads} thread{})", if threads == 1 { "" } else { "s" });
    let load = LoadOptions { gpu_layers: args.gpu_layers };
    let model = tokio::task::block_in_place(|| LocalModel::load(&model_path, &load))?;

    let prompt = DirectPrompt::build(&model, &folder, &args.question, args.ctx.min(model.n_ctx_train() as usize), args.max_tokens)?;
    if prompt.is_truncated() {
        eprintln!(
            "warning: the folder does not fit in a {}-token window; the model sees {} of {} files{}{}. Use --ctx to widen the window.",
            args.ctx,
            prompt.whole.len() + prompt.cut.iter().count(),
            folder.documents().len(),
            prompt.cut.as_ref().map(|c| format!(", {c} cut short")).unwrap_or_default(),
            if prompt.omitted.is_empty() { String::new() } else { format!(", {} left out ({})", prompt.omitted.len(), preview(&prompt.omitted)) },
        );
    }

    let options = GenerateOptions { max_tokens: args.max_tokens, n_ctx: Some(args.ctx as u32), threads, ..GenerateOptions::default() };
    let cancel = cancel_on_ctrl_c();
    let bars = Bars::new(Unit::Tokens);
    bars.begin("reading the folder into the model", Some(prompt.prompt_tokens as u64));
    let mut sink = Stream { bars: &bars, prompt_done: 0, cancel: &cancel, print: !args.json, started_answer: false };
    let generation = tokio::task::block_in_place(|| model.chat(&prompt.messages, &options, &mut sink))
        .with_context(|| format!("{} could not answer", model.name()))?;
    bars.end();
    if sink.started_answer {
        println!();
    }
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let out = serde_json::json!({
            "answer": generation.text.trim(),
            "mode": "direct",
            "model": model_ref,
            "files": { "whole": prompt.whole, "cut": prompt.cut, "omitted": prompt.omitted },
            "finish_reason": generation.finish_reason,
            "usage": { "prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens },
            "timings": { "prompt_ms": generation.prompt_ms, "generation_ms": generation.generation_ms },
            "seconds": seconds,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    let rate = generation.completion_tokens as f64 / (generation.generation_ms / 1e3).max(1e-9);
    eprintln!(
        "({} answer tokens at {rate:.1} tokens/s; prompt {} tokens in {:.1} s; {seconds:.1} s in all)",
        generation.completion_tokens,
        generation.prompt_tokens,
        generation.prompt_ms / 1e3
    );
    match generation.finish_reason {
        FinishReason::Cancelled => {
            eprintln!("cancelled");
            Ok(ExitCode::from(130))
        }
        FinishReason::Length => {
            eprintln!("warning: the answer reached --max-tokens {} and was cut off", args.max_tokens);
            Ok(ExitCode::SUCCESS)
        }
        FinishReason::Stop => Ok(ExitCode::SUCCESS),
    }
}

fn preview(paths: &[String]) -> String {
    let shown: Vec<_> = paths.iter().take(3).map(String::as_str).collect();
    let more = paths.len().saturating_sub(3);
    if more > 0 { format!("{}, and {more} more", shown.join(", ")) } else { shown.join(", ") }
}

/// Prompt progress to the bar, answer text to stdout as it arrives, Ctrl-C to a stop.
struct Stream<'a> {
    bars: &'a Bars,
    prompt_done: usize,
    cancel: &'a quarry_llm::CancelToken,
    print: bool,
    started_answer: bool,
}

impl TokenSink for Stream<'_> {
    fn prompt_progress(&mut self, done: usize, _total: usize) -> bool {
        self.bars.advance((done - self.prompt_done) as u64);
        self.prompt_done = done;
        !self.cancel.is_cancelled()
    }

    fn text(&mut self, text: &str) -> bool {
        if !self.started_answer {
            self.bars.end();
            self.started_answer = true;
        }
        if self.print {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        !self.cancel.is_cancelled()
    }
}
