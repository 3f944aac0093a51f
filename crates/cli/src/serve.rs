//! `quarry serve`: the local engine behind an OpenAI-compatible HTTP API.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use quarry_engine::engine::{Engine, EngineConfig, ModelSpec};
use quarry_engine::serve::{is_loopback, router, API_KEY_ENV};
use quarry_engine::Threads;
use quarry_models::ModelStore;

#[derive(Args)]
pub struct ServeArgs {
    /// A catalog id or a GGUF path; repeat to serve several models (e.g. a root and a sub).
    #[arg(long = "model", required = true)]
    models: Vec<String>,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// 0 picks a free port (reported in the ready line).
    #[arg(long, default_value_t = 8123)]
    port: u16,
    /// Require `Authorization: Bearer KEY` (also read from QUARRY_API_KEY, which keeps it out of
    /// the process list).
    #[arg(long)]
    api_key: Option<String>,
    /// Concurrent sequences per model.
    #[arg(long, default_value_t = 4)]
    slots: usize,
    /// Context window of each slot, in tokens.
    #[arg(long, default_value_t = 8192)]
    ctx: u32,
    /// CPU threads for every step, one-token and batched alike (default: chosen by measurement,
    /// see docs/benchmarks.md).
    #[arg(long)]
    threads: Option<usize>,
    /// CPU threads for batches alone: prompt chunks and steps where several streams generate
    /// (applied after --threads).
    #[arg(long)]
    batch_threads: Option<usize>,
    /// Layers to offload to a GPU, on GPU builds.
    #[arg(long, default_value_t = 0)]
    gpu_layers: u32,
}

pub async fn run(args: ServeArgs) -> Result<ExitCode> {
    let api_key = args.api_key.clone().or_else(|| std::env::var(API_KEY_ENV).ok()).filter(|k| !k.is_empty());
    if !is_loopback(&args.host) && api_key.is_none() {
        bail!("refusing to listen on {} without an API key: anyone on the network could use the models; pass --api-key or set {API_KEY_ENV}", args.host);
    }
    let store = ModelStore::from_env();
    let mut models = Vec::new();
    for m in &args.models {
        let path = store.resolve(m)?;
        let id = if store.catalog()?.get(m).is_ok() {
            m.clone()
        } else {
            path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| m.clone())
        };
        models.push(ModelSpec { id, path });
    }
    let config = EngineConfig {
        models,
        slots: args.slots,
        ctx_per_slot: args.ctx,
        threads: Threads::from_flags(args.threads, args.batch_threads),
        gpu_layers: args.gpu_layers,
        ..EngineConfig::default()
    };
    let engine = tokio::task::spawn_blocking(move || Engine::start(config)).await??;
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("could not listen on {}:{}", args.host, args.port))?;
    let port = listener.local_addr()?.port();
    let ids: Vec<&str> = engine.models().iter().map(|m| m.id.as_str()).collect();
    // Exactly one JSON line on stdout: supervisors wait for it.
    let ready = serde_json::json!({"event": "ready", "port": port, "models": ids, "threads": engine.threads()});
    let mut out = std::io::stdout().lock();
    writeln!(out, "{ready}")?;
    out.flush()?;
    drop(out);
    // What ran where, for crash reports: the CPU, the kernels selected, the threads.
    eprintln!("{}", engine.system().line());
    eprintln!(
        "serving {} on http://{}:{port}/v1 ({} slots × {} tokens, {})",
        ids.join(", "),
        args.host,
        args.slots,
        args.ctx,
        engine.threads()
    );
    axum::serve(listener, router(engine, api_key)).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
