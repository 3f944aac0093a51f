//! `quarry ask --mode rlm`: the Recursive Language Model loop, rendered live.
//!
//! The root and sub models are served by one supervised `quarry serve` child (two models, one
//! engine); the loop runs the root model's code in the sandboxed REPL worker. Each iteration's
//! code and a summary of its output go to stderr as they happen; the answer goes to stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use quarry_index::Folder;
use quarry_llm::{LocalServer, ServerOptions};
use quarry_rlm::{Event, Rlm, RlmConfig, StopReason};

/// What the rlm mode needs beyond the shared `ask` arguments.
pub struct RlmAsk<'a> {
    pub folder: &'a Folder,
    pub question: &'a str,
    pub root: (String, PathBuf),
    pub sub: (String, PathBuf),
    pub ctx: usize,
    pub threads: usize,
    pub gpu_layers: u32,
    pub json: bool,
    pub trajectory: Option<PathBuf>,
}

pub async fn run(a: RlmAsk<'_>) -> Result<ExitCode> {
    eprintln!("Starting the local engine with {} (root) and {} (sub), {} thread(s)", a.root.0, a.sub.0, a.threads);
    let mut models = vec![a.root.1.display().to_string()];
    if a.sub.1 != a.root.1 {
        models.push(a.sub.1.display().to_string());
    }
    let mut options = ServerOptions::new(models);
    options.slots = 4;
    options.ctx_per_slot = a.ctx as u32;
    options.threads = Some(a.threads);
    options.gpu_layers = a.gpu_layers;
    let server = LocalServer::start(options).await?;
    // The engine names a model by its file stem.
    let stem = |p: &PathBuf| p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let root = Arc::new(server.model(&stem(&a.root.1)));
    let sub = Arc::new(server.model(&stem(&a.sub.1)));
    let rlm = Rlm::new(root, sub, RlmConfig::default());

    let cancel = Arc::new(AtomicBool::new(false));
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.store(true, Ordering::SeqCst);
        }
    });
    let show = !a.json;
    let run = rlm
        .run(a.folder, a.question, cancel, move |event| {
            if show {
                render(event)
            }
        })
        .await
        .context("the RLM run failed")?;
    server.shutdown().await;

    if let Some(path) = &a.trajectory {
        let file = std::fs::File::create(path).with_context(|| format!("could not write {}", path.display()))?;
        run.trajectory
            .write_jsonl(std::io::BufWriter::new(file))
            .with_context(|| format!("could not write {}", path.display()))?;
        eprintln!("trajectory saved to {}", path.display());
    }
    if a.json {
        let out = serde_json::json!({
            "answer": run.answer,
            "mode": "rlm",
            "iterations": run.iterations,
            "sub_calls": run.sub_calls,
            "stop_reason": run.stop_reason,
            "seconds": run.seconds,
            "usage": run.usage,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if let Some(answer) = &run.answer {
        println!("{}", answer.trim());
    }
    eprintln!(
        "({} iterations, {} sub-calls, {} root + {} sub tokens, {:.1} s; ended by {:?})",
        run.iterations,
        run.sub_calls,
        run.root_usage.total(),
        run.sub_usage.total(),
        run.seconds,
        run.stop_reason
    );
    Ok(if run.stop_reason == StopReason::Cancelled { ExitCode::from(130) } else { ExitCode::SUCCESS })
}

/// One readable line (or a few) per event; model deltas are not echoed, the code is.
fn render(event: &Event) {
    match event {
        Event::IterationStarted { index, .. } => eprintln!("── iteration {index}"),
        Event::CodeBlock { code, .. } => {
            for line in code.lines() {
                eprintln!("  │ {line}");
            }
        }
        Event::ReplResult { result, .. } => {
            let out = result.stdout.trim();
            let first = out.lines().next().unwrap_or("");
            let more = out.lines().count().saturating_sub(1);
            if let Some(err) = &result.error {
                eprintln!("  ✗ {}", err.lines().last().unwrap_or(err));
            } else if !first.is_empty() {
                eprintln!("  → {first}{}", if more > 0 { format!(" (+{more} lines)") } else { String::new() });
            } else if let Some(v) = &result.value {
                eprintln!("  → {}", v.chars().take(160).collect::<String>());
            }
        }
        Event::SubCallStarted { id, prompt_chars, .. } => eprintln!("  ↳ sub-call {id} ({prompt_chars} chars)"),
        Event::Error { message } => eprintln!("  ! {message}"),
        _ => {}
    }
}
