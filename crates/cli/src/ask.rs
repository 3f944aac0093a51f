//! `quarry ask`: answer a question about a folder.
//!
//! Until the RLM loop lands this runs the direct mode: the folder (as much as fits) goes into
//! the model's window and the answer streams back. The model runs in a supervised
//! `quarry serve` child, so a llama.cpp abort cannot take this process down; only the tokenizer
//! is loaded here, to fit the folder to the window exactly. Progress goes to stderr, the answer
//! to stdout, so `quarry ask ... > answer.txt` captures just the answer.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use quarry_index::Folder;
use quarry_llm::local::{default_threads, Tokenizer};
use quarry_llm::{ChatRequest, DeltaSink, FinishReason, LanguageModel, LocalServer, ModelStore, Role, ServerOptions};
use quarry_rlm::direct::DirectPrompt;

use crate::models::cancel_on_ctrl_c;

/// How to answer.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The whole folder in the model's window (cut to fit), one pass.
    Direct,
    /// The Recursive Language Model loop: the root model writes Python over the folder in a
    /// sandboxed REPL and hands pieces to the sub model.
    Rlm,
}

#[derive(Args)]
pub struct AskArgs {
    /// How to answer. `direct` stays the default until the RLM loop is measured against it on
    /// the evaluation suite.
    #[arg(long, value_enum, default_value = "direct")]
    mode: Mode,
    /// The sub model for `--mode rlm` (default: the catalog's default sub model).
    #[arg(long)]
    sub_model: Option<String>,
    /// Save the RLM trajectory as JSON lines (metadata, then one line per iteration).
    #[arg(long)]
    trajectory: Option<PathBuf>,
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
    if args.mode == Mode::Rlm {
        let sub_ref = args.sub_model.clone().unwrap_or_else(|| catalog.default_for(Role::Sub).id.clone());
        let sub_path = store.resolve(&sub_ref)?;
        return crate::ask_rlm::run(crate::ask_rlm::RlmAsk {
            folder: &folder,
            question: &args.question,
            root: (model_ref, model_path),
            sub: (sub_ref, sub_path),
            ctx: args.ctx,
            threads,
            gpu_layers: args.gpu_layers,
            json: args.json,
            trajectory: args.trajectory.clone(),
        })
        .await;
    }

    let tokenizer = Tokenizer::load(&model_path)?;
    let prompt = DirectPrompt::build(&tokenizer, &folder, &args.question, args.ctx, args.max_tokens)?;
    if prompt.is_truncated() {
        eprintln!(
            "warning: the folder does not fit in a {}-token window; the model sees {} of {} files{}{}. Use --ctx to widen the window.",
            args.ctx,
            prompt.whole.len() + prompt.cut.iter().count(),
            folder.documents().len(),
            prompt.cut.as_ref().map(|c| format!(", {c} cut short")).unwrap_or_default(),
            if prompt.omitted.is_empty() {
                String::new()
            } else {
                format!(", {} left out ({})", prompt.omitted.len(), preview(&prompt.omitted))
            },
        );
    }

    eprintln!("Starting the local engine with {model_ref} ({threads} thread{})", if threads == 1 { "" } else { "s" });
    let mut options = ServerOptions::new(vec![model_path.display().to_string()]);
    options.slots = 1;
    options.ctx_per_slot = args.ctx as u32;
    options.threads = Some(threads);
    options.gpu_layers = args.gpu_layers;
    let server = LocalServer::start(options).await?;
    let model = server.model(&model_ref);

    let request = ChatRequest { max_tokens: Some(args.max_tokens), ..ChatRequest::new(prompt.messages.clone()) };
    let spinner = if std::io::stderr().is_terminal() { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
    spinner.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"));
    spinner.set_message(format!("reading {} tokens into the model", prompt.prompt_tokens));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let mut sink = Stream { spinner: &spinner, cancel: cancel_on_ctrl_c(), print: !args.json, started_answer: false };
    let completion =
        model.chat_stream(&request, &mut sink).await.with_context(|| format!("{model_ref} could not answer"))?;
    spinner.finish_and_clear();
    if sink.started_answer {
        println!();
    }
    server.shutdown().await;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let out = serde_json::json!({
            "answer": completion.text.trim(),
            "mode": "direct",
            "model": model_ref,
            "files": { "whole": prompt.whole, "cut": prompt.cut, "omitted": prompt.omitted },
            "finish_reason": completion.finish_reason,
            "usage": completion.usage,
            "timings": completion.timings,
            "seconds": seconds,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    let u = &completion.usage;
    let t = &completion.timings;
    let rate = u.completion_tokens as f64 / (t.generation_ms / 1e3).max(1e-9);
    eprintln!(
        "({} answer tokens at {rate:.1} tokens/s; prompt {} tokens in {:.1} s; {seconds:.1} s in all)",
        u.completion_tokens,
        u.prompt_tokens,
        t.prompt_ms / 1e3
    );
    match completion.finish_reason {
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
    if more > 0 {
        format!("{}, and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Answer text to stdout as it arrives; Ctrl-C to a stop.
struct Stream<'a> {
    spinner: &'a ProgressBar,
    cancel: quarry_llm::CancelToken,
    print: bool,
    started_answer: bool,
}

impl DeltaSink for Stream<'_> {
    fn delta(&mut self, text: &str) -> bool {
        if !self.started_answer {
            self.spinner.finish_and_clear();
            self.started_answer = true;
        }
        if self.print {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        !self.cancel.is_cancelled()
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}
