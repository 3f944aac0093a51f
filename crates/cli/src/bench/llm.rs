//! `quarry bench llm`: the local engine's speed, served and concurrent, next to the raw
//! in-process llama.cpp loop measured in the same run.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use futures_util::StreamExt;
use quarry_llm::local::raw_bench::{bench_tokens, raw_batched, raw_speed};
use quarry_llm::{LocalServer, ModelStore, ServerOptions};
use serde_json::{json, Value};

#[derive(Args)]
pub struct BenchLlmArgs {
    /// Catalog id or GGUF path.
    #[arg(long)]
    model: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// CPU threads (default: physical cores − 1), the same for every measurement.
    #[arg(long)]
    threads: Option<usize>,
    /// Repetitions per figure (the mean is reported; the median for the concurrent figures).
    #[arg(long, default_value_t = 3)]
    reps: usize,
}

const PP: usize = 512;
const TG: usize = 128;
/// The concurrent figures: this many simultaneous streams, each with a prompt of
/// `CONC_PROMPT` tokens and `CONC_GEN` generated tokens.
const WIDTHS: [usize; 4] = [1, 2, 4, 8];
const CONC_PROMPT: usize = 16;
const CONC_GEN: usize = 64;

pub async fn run(args: BenchLlmArgs) -> Result<ExitCode> {
    if args.reps == 0 {
        bail!("--reps must be at least 1");
    }
    let store = ModelStore::from_env();
    let path = store.resolve(&args.model)?;
    let threads = args.threads.unwrap_or_else(quarry_llm::local::default_threads);
    let say = |s: &str| {
        if !args.json {
            eprintln!("{s}");
        }
    };

    say("served: starting `quarry serve` …");
    let mut options = ServerOptions::new(vec![path.display().to_string()]);
    options.threads = Some(threads);
    options.slots = 4;
    options.ctx_per_slot = 4096;
    let server = LocalServer::start(options).await?;
    let base = server.base_url().await?;
    let key = server_key(&server).await?;
    let http = reqwest::Client::new();
    let bench = Bench { http, base, key };

    // Warm-up request so the served figures, like the raw ones, exclude first-touch costs.
    bench
        .stream(json!({"prompt": bench_tokens(64, 99), "max_tokens": 8, "ignore_eos": true, "cache_prompt": false}))
        .await?;

    say(&format!(
        "raw and served: pp{PP} and tg{TG}, in-process llama-cpp-2 then `quarry serve` over HTTP, {threads} thread(s), {} alternating reps",
        args.reps
    ));
    // The served reps run between the raw ones (on this blocking thread, through the runtime's
    // handle): the idle server and the idle raw context cost no CPU while the other measures.
    let p = path.clone();
    let reps = args.reps;
    let runtime = tokio::runtime::Handle::current();
    let served_bench = bench.clone();
    let (raw, served_reps) = tokio::task::spawn_blocking(move || {
        let mut served_reps = Vec::new();
        let raw = raw_speed(&p, threads, PP, TG, reps, |r| {
            served_reps.push(runtime.block_on(served_bench.speed(r)));
        });
        (raw, served_reps)
    })
    .await?;
    let raw = raw?;
    let served_reps = served_reps.into_iter().collect::<Result<Vec<_>>>()?;
    let n = served_reps.len() as f64;
    let served = (served_reps.iter().map(|s| s.0).sum::<f64>() / n, served_reps.iter().map(|s| s.1).sum::<f64>() / n);

    say(&format!(
        "raw concurrent: 1, 2, 4 and 8 sequences decoded together in-process, {CONC_PROMPT}-token prompts and {CONC_GEN} tokens each, {} reps",
        args.reps
    ));
    let p = path.clone();
    let mut raw_rates =
        tokio::task::spawn_blocking(move || raw_batched(&p, threads, &WIDTHS, CONC_PROMPT, CONC_GEN, reps)).await??;
    let mut raw_concurrent = serde_json::Map::new();
    for (w, n) in WIDTHS.iter().enumerate() {
        raw_concurrent.insert(n.to_string(), json!(round(super::quantile(&mut raw_rates[w], 0.5))));
    }

    say(&format!(
        "concurrent: 1, 2, 4 and 8 simultaneous streams of {CONC_GEN} tokens, interleaved, {} reps …",
        args.reps
    ));
    // Interleaved rounds and the median per width: a shared machine's speed drifts over a run,
    // and one 64-token stream lasts two seconds.
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); WIDTHS.len()];
    for r in 0..args.reps {
        for (w, &n) in WIDTHS.iter().enumerate() {
            let start = Instant::now();
            let runs = (0..n).map(|i| {
                let seed = 3000 + (r * 100 + n * 10 + i) as u64;
                bench.stream(json!({"prompt": bench_tokens(CONC_PROMPT, seed), "max_tokens": CONC_GEN, "ignore_eos": true, "cache_prompt": false}))
            });
            let mut tokens = 0;
            for result in futures_util::future::join_all(runs).await {
                tokens += result?.tokens;
            }
            rates[w].push(tokens as f64 / start.elapsed().as_secs_f64());
        }
    }
    let mut concurrent = serde_json::Map::new();
    for (w, n) in WIDTHS.iter().enumerate() {
        concurrent.insert(n.to_string(), json!(round(super::quantile(&mut rates[w], 0.5))));
    }

    // Which kernels the batched steps ran on (the served child's small-batch switch).
    let kernels: Value =
        bench.http.get(format!("{}/health", bench.base)).send().await?.json::<Value>().await?["kernels"].clone();

    say("prefix_cache: a 2,000-token prefix, cold then warm …");
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;
    let mut prefix = bench_tokens(2000, nonce);
    let cold_prompt = [prefix.clone(), vec![11, 12, 13]].concat();
    let cold = bench.stream(json!({"prompt": cold_prompt, "max_tokens": 1, "ignore_eos": true})).await?;
    prefix.extend([21, 22, 23]);
    let warm = bench.stream(json!({"prompt": prefix, "max_tokens": 1, "ignore_eos": true})).await?;
    server.shutdown().await;

    let c1 = concurrent["1"].as_f64().unwrap_or(0.0);
    let c4 = concurrent["4"].as_f64().unwrap_or(0.0);
    let r1 = raw_concurrent["1"].as_f64().unwrap_or(0.0);
    let r4 = raw_concurrent["4"].as_f64().unwrap_or(0.0);
    let report = json!({
        "model": args.model,
        "threads": threads,
        "raw": {"pp512": round(raw.pp), "tg128": round(raw.tg)},
        "served": {"pp512": round(served.0), "tg128": round(served.1)},
        "concurrent": concurrent,
        "raw_concurrent": raw_concurrent,
        "kernels": kernels,
        "prefix_cache": {"ttft_cold_ms": round(cold.ttft * 1e3), "ttft_warm_ms": round(warm.ttft * 1e3), "cached_tokens": warm.cached},
        "targets": {
            "served_pp_ratio": round(served.0 / raw.pp),
            "served_tg_ratio": round(served.1 / raw.tg),
            "concurrent_4_over_1": round(c4 / c1),
            "raw_concurrent_4_over_1": round(r4 / r1),
            "warm_over_cold": round(warm.ttft / cold.ttft),
        },
    });
    if args.json {
        println!("{report}");
    } else {
        println!("model {}  threads {threads}", args.model);
        println!("{:<28} {:>10} {:>10}", "", "pp512 t/s", "tg128 t/s");
        println!("{:<28} {:>10.1} {:>10.1}", "raw (llama-cpp-2 loop)", raw.pp, raw.tg);
        println!(
            "{:<28} {:>10.1} {:>10.1}   ({:.3}× / {:.3}× raw; target ≥ 0.95×)",
            "served (HTTP, one stream)",
            served.0,
            served.1,
            served.0 / raw.pp,
            served.1 / raw.tg
        );
        println!("{:<28} {:>10} {:>10}", "generated t/s, aggregate", "served", "raw");
        for n in ["1", "2", "4", "8"] {
            println!(
                "{:<28} {:>10.1} {:>10.1}",
                format!("concurrent {n} stream(s)"),
                concurrent[n].as_f64().unwrap_or(0.0),
                raw_concurrent[n].as_f64().unwrap_or(0.0)
            );
        }
        println!("4 streams / 1 stream: {:.2}× served, {:.2}× raw (target ≥ 1.35×)", c4 / c1, r4 / r1);
        println!(
            "kernels: tinyBLAS for batches of ≥ {} tokens; {} narrower calls sent to ggml's own kernels",
            kernels["tinyblas_min_batch"], kernels["small_batches"]
        );
        println!(
            "prefix cache: TTFT cold {:.0} ms, warm {:.0} ms ({:.3}×, target ≤ 0.15×; {} tokens from cache)",
            cold.ttft * 1e3,
            warm.ttft * 1e3,
            warm.ttft / cold.ttft,
            warm.cached
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The supervised child's API key, read back through a client (benchmarks talk raw HTTP).
async fn server_key(server: &LocalServer) -> Result<Option<String>> {
    Ok(server.client("bench").await?.api_key().map(str::to_string))
}

#[derive(Clone)]
struct Bench {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

/// Client-side timings of one streamed completion, in seconds.
struct Streamed {
    ttft: f64,
    total: f64,
    tokens: usize,
    cached: usize,
}

impl Bench {
    /// One rep of the served pp512 and tg128 figures, tokens per second.
    async fn speed(&self, r: usize) -> Result<(f64, f64)> {
        let s = self.stream(json!({"prompt": bench_tokens(PP, 1000 + r as u64), "max_tokens": 1, "ignore_eos": true, "cache_prompt": false})).await?;
        let pp = PP as f64 / s.ttft;
        let s = self.stream(json!({"prompt": bench_tokens(8, 2000 + r as u64), "max_tokens": TG + 1, "ignore_eos": true, "cache_prompt": false})).await?;
        Ok((pp, (s.tokens - 1) as f64 / (s.total - s.ttft)))
    }

    async fn stream(&self, mut body: Value) -> Result<Streamed> {
        body["stream"] = json!(true);
        body["temperature"] = json!(0.0);
        let start = Instant::now();
        let mut req = self.http.post(format!("{}/v1/completions", self.base)).json(&body);
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.context("the benchmark request failed")?;
        if !resp.status().is_success() {
            bail!("the server answered {}: {}", resp.status(), resp.text().await.unwrap_or_default());
        }
        let mut ttft = None;
        let mut last = Value::Null;
        let mut buf = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk?);
            while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let Some(data) = line.trim().strip_prefix("data:").map(str::trim) else { continue };
                if data == "[DONE]" {
                    continue;
                }
                let v: Value = serde_json::from_str(data)?;
                if v["choices"][0]["text"].as_str().is_some_and(|t| !t.is_empty())
                    || !v["choices"][0]["finish_reason"].is_null()
                {
                    ttft.get_or_insert_with(|| start.elapsed().as_secs_f64());
                }
                if !v["usage"].is_null() {
                    last = v;
                }
            }
        }
        let total = start.elapsed().as_secs_f64();
        Ok(Streamed {
            ttft: ttft.unwrap_or(total),
            total,
            tokens: last["usage"]["completion_tokens"].as_u64().unwrap_or(0) as usize,
            cached: last["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0) as usize,
        })
    }
}
