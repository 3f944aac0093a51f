//! `quarry bench repl`: the sandboxed REPL's costs, each next to its target and, where one
//! exists, a reference measured in the same run (a bare `python3 -I -c pass` for spawning).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use quarry_repl::{Context, EchoHost, Environment, Repl, SandboxConfig};
use serde_json::json;

#[derive(Args)]
pub struct BenchReplArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Worker spawns to time.
    #[arg(long, default_value_t = 10)]
    spawns: usize,
    /// Round trips to time (empty executions and llm_query calls each).
    #[arg(long, default_value_t = 1000)]
    round_trips: usize,
    /// Size of the text context to load, in MB.
    #[arg(long, default_value_t = 100)]
    context_mb: usize,
}

struct Stat {
    median_ms: f64,
    p90_ms: f64,
}

fn stat(samples: Vec<Duration>) -> Stat {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    Stat { median_ms: super::quantile(&mut ms, 0.5), p90_ms: super::quantile(&mut ms, 0.9) }
}

pub fn run(args: BenchReplArgs) -> Result<ExitCode> {
    if args.spawns == 0 || args.round_trips == 0 {
        bail!("--spawns and --round-trips must be at least 1");
    }
    let host = Arc::new(EchoHost::default());

    // Worker spawn: run directory, exec, interpreter start, confinement, ready line.
    let mut spawns = Vec::new();
    let mut info = None;
    for _ in 0..args.spawns {
        let t = Instant::now();
        let repl = Repl::new(SandboxConfig::default(), host.clone()).context("starting the REPL")?;
        spawns.push(t.elapsed());
        info.get_or_insert_with(|| repl.info().clone());
    }
    let info = info.expect("at least one spawn");
    // The interpreter itself, not a wrapper such as pyenv's shim script.
    let python = std::process::Command::new("python3")
        .args(["-I", "-c", "import sys; print(sys.executable)"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "python3".into());
    let mut python_spawns = Vec::new();
    for _ in 0..args.spawns {
        let t = Instant::now();
        let status = std::process::Command::new(&python).args(["-I", "-c", "pass"]).status();
        if status.map(|s| s.success()).unwrap_or(false) {
            python_spawns.push(t.elapsed());
        }
    }

    let mut repl = Repl::new(SandboxConfig::default(), host.clone())?;
    // Warm-up, then empty round trips.
    for _ in 0..20 {
        repl.execute("pass")?;
    }
    let mut empty = Vec::with_capacity(args.round_trips);
    for _ in 0..args.round_trips {
        let t = Instant::now();
        let r = repl.execute("pass")?;
        empty.push(t.elapsed());
        if let Some(e) = r.error {
            bail!("`pass` failed in the REPL: {e}");
        }
    }
    // llm_query round trips with an instant model: everything measured is overhead.
    let mut with_call = Vec::with_capacity(args.round_trips);
    for _ in 0..args.round_trips {
        let t = Instant::now();
        let r = repl.execute("llm_query('x')")?;
        with_call.push(t.elapsed());
        if r.value.as_deref() != Some("'echo: x'") {
            bail!("llm_query returned {:?} ({:?})", r.value, r.error);
        }
    }
    // Many calls inside one execution: the per-call cost without the execution's own.
    let calls = args.round_trips;
    let t = Instant::now();
    let r = repl.execute(&format!("for _ in range({calls}): llm_query('x')"))?;
    let loop_total = t.elapsed();
    if let Some(e) = r.error {
        bail!("the llm_query loop failed: {e}");
    }
    let per_call_in_loop_ms = loop_total.as_secs_f64() * 1e3 / calls as f64;

    // A 100 MB context: write, map, decode into `context`.
    let mut text = "The quick brown fox jumps over the lazy dog. 0123456789\n".repeat((args.context_mb << 20) / 56 + 1);
    text.truncate(args.context_mb << 20);
    let t = Instant::now();
    let loaded = repl.load_context(&Context::Text(text))?;
    let context_load = t.elapsed();
    let check = repl.execute("len(context)")?;
    if check.value != Some(loaded.chars.to_string()) {
        bail!("the context did not arrive whole: {:?} vs {}", check.value, loaded.chars);
    }

    let spawn = stat(spawns);
    let empty = stat(empty);
    let with_call = stat(with_call);
    let overhead_ms = (with_call.median_ms - empty.median_ms).max(0.0);
    let python_ref = (!python_spawns.is_empty()).then(|| stat(python_spawns));

    if args.json {
        let out = json!({
            "worker_spawn_ms": { "median": spawn.median_ms, "p90": spawn.p90_ms, "target": 150.0 },
            "empty_execution_ms": { "median": empty.median_ms, "p90": empty.p90_ms, "target": 2.0 },
            "llm_query_overhead_ms": {
                "median": overhead_ms,
                "per_call_in_loop": per_call_in_loop_ms,
                "target": 1.0,
            },
            "context_load_ms": { "mb": args.context_mb, "value": context_load.as_secs_f64() * 1e3, "target": 1000.0 },
            "reference": { "python3_spawn_ms": python_ref.as_ref().map(|p| p.median_ms) },
            "python": info.python,
            "confinement": info.active,
            "missing": info.missing,
        });
        println!("{out}");
    } else {
        println!(
            "quarry bench repl  (Python {}, confinement: {})",
            info.python.lines().next().unwrap_or(""),
            info.active.join(", ")
        );
        println!("{:<44} {:>10} {:>10} {:>8}", "", "median", "p90", "target");
        println!("{:<44} {:>8.1}ms {:>8.1}ms {:>6}ms", "worker spawn (to ready)", spawn.median_ms, spawn.p90_ms, 150);
        if let Some(p) = &python_ref {
            println!("{:<44} {:>8.1}ms {:>8.1}ms", "  reference: python3 -I -c pass", p.median_ms, p.p90_ms);
        }
        println!("{:<44} {:>8.3}ms {:>8.3}ms {:>6}ms", "empty execution round trip", empty.median_ms, empty.p90_ms, 2);
        println!("{:<44} {:>8.3}ms {:>10} {:>6}ms", "llm_query round trip overhead", overhead_ms, "", 1);
        println!("{:<44} {:>8.3}ms", "  per llm_query inside one execution", per_call_in_loop_ms);
        println!(
            "{:<44} {:>8.1}ms {:>10} {:>6}ms",
            format!("{} MB context loaded", args.context_mb),
            context_load.as_secs_f64() * 1e3,
            "",
            1000
        );
    }
    Ok(ExitCode::SUCCESS)
}
