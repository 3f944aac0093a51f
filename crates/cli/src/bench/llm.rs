//! `quarry bench llm`: the local engine's speed, served and concurrent, next to the raw
//! in-process llama.cpp loop measured in the same run; thread settings side by side
//! (`--thread-settings`); and another build of the engine beside this one (`--compare-engine`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use futures_util::StreamExt;
use quarry_engine::raw_bench::{bench_tokens, raw_batched, raw_speed};
use quarry_engine::Threads;
use quarry_llm::{LocalServer, ServerOptions};
use quarry_models::ModelStore;
use serde_json::{json, Value};

#[derive(Args)]
pub struct BenchLlmArgs {
    /// Catalog id or GGUF path.
    #[arg(long)]
    model: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// CPU threads for every step of the main measurement (default: the engine's).
    #[arg(long)]
    threads: Option<usize>,
    /// CPU threads for batches in the main measurement (applied after --threads).
    #[arg(long)]
    batch_threads: Option<usize>,
    /// Repetitions per figure (the mean is reported; the median for the concurrent figures).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Thread settings to compare, as DECODE/BATCH pairs, e.g. `1/1,1/2,2/2`: one served engine
    /// each, measured in interleaved rounds (pp512, tg128, 1 and 4 streams, the sub-call burst).
    #[arg(long, value_delimiter = ',')]
    thread_settings: Vec<String>,
    /// Another `quarry` executable (the portable build, say) whose served pp512 and tg128 are
    /// measured in reps alternating with this one's.
    #[arg(long)]
    compare_engine: Option<PathBuf>,
    /// The sub-call burst: this many prompts at once, as `llm_query_batched` sends them.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Tokens in each burst prompt.
    #[arg(long, default_value_t = 600)]
    burst_prompt: usize,
    /// Tokens generated for each burst prompt.
    #[arg(long, default_value_t = 32)]
    burst_gen: usize,
    /// Skip the main measurement (raw vs served, concurrency, prefix cache) and run only the
    /// comparisons asked for.
    #[arg(long)]
    only_comparisons: bool,
}

const PP: usize = 512;
const TG: usize = 128;
/// The concurrent figures: this many simultaneous streams, each with a prompt of
/// `CONC_PROMPT` tokens and `CONC_GEN` generated tokens.
const WIDTHS: [usize; 4] = [1, 2, 4, 8];
const CONC_PROMPT: usize = 16;
const CONC_GEN: usize = 64;
/// Slots per served engine: what `quarry ask` starts (the root keeps one while sub-calls run).
const SLOTS: usize = 4;

pub async fn run(args: BenchLlmArgs) -> Result<ExitCode> {
    if args.reps == 0 {
        bail!("--reps must be at least 1");
    }
    let settings = args.thread_settings.iter().map(|s| parse_setting(s)).collect::<Result<Vec<_>>>()?;
    let store = ModelStore::from_env();
    let path = store.resolve(&args.model)?;
    let threads = Threads::from_flags(args.threads, args.batch_threads);
    let say = |s: &str| {
        if !args.json {
            eprintln!("{s}");
        }
    };
    let mut report = json!({"model": args.model, "threads": threads, "reps": args.reps});

    if !args.only_comparisons {
        report["main"] = main_figures(&args, &path, threads, &say).await?;
    }
    if let Some(other) = &args.compare_engine {
        report["compare"] = compare_engines(&args, &path, threads, other, &say).await?;
    }
    if !settings.is_empty() {
        report["thread_settings"] = thread_settings(&args, &path, &settings, &say).await?;
    }

    if args.json {
        println!("{report}");
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// `1/2` → one decode thread, two batch threads.
fn parse_setting(s: &str) -> Result<Threads> {
    let (d, b) = s.split_once('/').unwrap_or((s, s));
    let n = |x: &str| -> Result<usize> {
        x.trim().parse::<usize>().ok().filter(|n| *n > 0).with_context(|| {
            format!("--thread-settings takes DECODE/BATCH pairs of positive numbers, like 1/2; {s:?} is not one")
        })
    };
    Ok(Threads { decode: n(d)?, batch: n(b)? })
}

async fn start(path: &std::path::Path, threads: Threads, program: Option<&PathBuf>) -> Result<(LocalServer, Served)> {
    let mut options = ServerOptions::new(vec![path.display().to_string()]);
    if let Some(p) = program {
        options.program = p.clone();
    }
    options.threads = Some(threads.decode);
    options.batch_threads = Some(threads.batch);
    options.slots = SLOTS;
    options.ctx_per_slot = 4096;
    let server = LocalServer::start(options).await?;
    let base = server.base_url().await?;
    let key = server.client("bench").await?.api_key().map(str::to_string);
    let served = Served { http: reqwest::Client::new(), base, key };
    // Warm-up request so the served figures, like the raw ones, exclude first-touch costs.
    served
        .stream(json!({"prompt": bench_tokens(64, 99), "max_tokens": 8, "ignore_eos": true, "cache_prompt": false}))
        .await?;
    Ok((server, served))
}

/// Raw against served at `threads`, the engine's concurrency against llama.cpp's own batched
/// loop, the prefix cache, and the sub-call burst.
async fn main_figures(
    args: &BenchLlmArgs,
    path: &std::path::Path,
    threads: Threads,
    say: &impl Fn(&str),
) -> Result<Value> {
    say(&format!("served: starting `quarry serve` ({threads}) …"));
    let (server, bench) = start(path, threads, None).await?;

    say(&format!(
        "raw and served: pp{PP} and tg{TG}, in-process llama-cpp-2 then `quarry serve` over HTTP, {} alternating reps",
        args.reps
    ));
    // The served reps run between the raw ones (on this blocking thread, through the runtime's
    // handle): the idle server and the idle raw context cost no CPU while the other measures.
    let p = path.to_path_buf();
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
    let served = mean_pair(&served_reps);

    say(&format!(
        "raw concurrent: 1, 2, 4 and 8 sequences decoded together in-process, {CONC_PROMPT}-token prompts and {CONC_GEN} tokens each, {} reps",
        args.reps
    ));
    let p = path.to_path_buf();
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
            rates[w].push(bench.streams(n, r).await?);
        }
    }
    let mut concurrent = serde_json::Map::new();
    for (w, n) in WIDTHS.iter().enumerate() {
        concurrent.insert(n.to_string(), json!(round(super::quantile(&mut rates[w], 0.5))));
    }

    // Which kernels the batched steps ran on (the served child's small-batch switch), and what
    // the child runs on.
    let health: Value = bench.http.get(format!("{}/health", bench.base)).send().await?.json().await?;

    say("prefix_cache: a 2,000-token prefix, cold then warm …");
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;
    let mut prefix = bench_tokens(2000, nonce);
    let cold_prompt = [prefix.clone(), vec![11, 12, 13]].concat();
    let cold = bench.stream(json!({"prompt": cold_prompt, "max_tokens": 1, "ignore_eos": true})).await?;
    prefix.extend([21, 22, 23]);
    let warm = bench.stream(json!({"prompt": prefix, "max_tokens": 1, "ignore_eos": true})).await?;

    say(&format!(
        "burst: {} prompts of {} tokens at once, {} generated each …",
        args.burst, args.burst_prompt, args.burst_gen
    ));
    let burst = bench.burst(args, 0).await?;
    server.shutdown().await;

    let c1 = concurrent["1"].as_f64().unwrap_or(0.0);
    let c4 = concurrent["4"].as_f64().unwrap_or(0.0);
    let r1 = raw_concurrent["1"].as_f64().unwrap_or(0.0);
    let r4 = raw_concurrent["4"].as_f64().unwrap_or(0.0);
    Ok(json!({
        "threads": threads,
        "raw": {"pp512": round(raw.pp), "tg128": round(raw.tg)},
        "served": {"pp512": round(served.0), "tg128": round(served.1)},
        "concurrent": concurrent,
        "raw_concurrent": raw_concurrent,
        "kernels": health["kernels"],
        "system": health["system"],
        "prefix_cache": {"ttft_cold_ms": round(cold.ttft * 1e3), "ttft_warm_ms": round(warm.ttft * 1e3), "cached_tokens": warm.cached},
        "burst_seconds": round(burst),
        "targets": {
            "served_pp_ratio": round(served.0 / raw.pp),
            "served_tg_ratio": round(served.1 / raw.tg),
            "concurrent_4_over_1": round(c4 / c1),
            "raw_concurrent_4_over_1": round(r4 / r1),
            "warm_over_cold": round(warm.ttft / cold.ttft),
        },
    }))
}

/// This build's served pp512/tg128 against another `quarry`'s, in alternating reps at the same
/// threads.
async fn compare_engines(
    args: &BenchLlmArgs,
    path: &std::path::Path,
    threads: Threads,
    other: &PathBuf,
    say: &impl Fn(&str),
) -> Result<Value> {
    say(&format!(
        "compare: this engine and {} side by side ({threads}), {} alternating reps …",
        other.display(),
        args.reps
    ));
    let (this_server, this) = start(path, threads, None).await?;
    let (other_server, that) = start(path, threads, Some(other)).await?;
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    for r in 0..args.reps {
        mine.push(this.speed(r).await?);
        theirs.push(that.speed(r).await?);
    }
    let health = |s: &Served| {
        let url = format!("{}/health", s.base);
        let http = s.http.clone();
        async move { http.get(url).send().await?.json::<Value>().await }
    };
    let this_system = health(&this).await?["system"].clone();
    let other_system = health(&that).await?["system"].clone();
    this_server.shutdown().await;
    other_server.shutdown().await;
    let (a, b) = (mean_pair(&mine), mean_pair(&theirs));
    Ok(json!({
        "other": other.display().to_string(),
        "threads": threads,
        "this": {"pp512": round(a.0), "tg128": round(a.1), "build": this_system["build"], "cpu_variant": this_system["cpu_variant"]},
        "other_engine": {"pp512": round(b.0), "tg128": round(b.1), "build": other_system["build"], "cpu_variant": other_system["cpu_variant"]},
        "other_over_this": {"pp512": round(b.0 / a.0), "tg128": round(b.1 / a.1)},
    }))
}

/// Every setting's served engine, measured in interleaved rounds so drift falls on all alike.
async fn thread_settings(
    args: &BenchLlmArgs,
    path: &std::path::Path,
    settings: &[Threads],
    say: &impl Fn(&str),
) -> Result<Value> {
    say(&format!(
        "thread settings: {} served engines, {} interleaved rounds of pp{PP}, tg{TG}, 1 and 4 streams and a burst of {} × {}-token prompts …",
        settings.len(),
        args.reps,
        args.burst,
        args.burst_prompt
    ));
    let mut servers = Vec::new();
    for &t in settings {
        servers.push(start(path, t, None).await?);
    }
    #[derive(Default)]
    struct Figures {
        speed: Vec<(f64, f64)>,
        one: Vec<f64>,
        four: Vec<f64>,
        burst: Vec<f64>,
    }
    let mut figures: Vec<Figures> = settings.iter().map(|_| Figures::default()).collect();
    for r in 0..args.reps {
        for (i, (_, served)) in servers.iter().enumerate() {
            let f = &mut figures[i];
            f.speed.push(served.speed(r).await?);
            f.one.push(served.streams(1, r).await?);
            f.four.push(served.streams(4, r).await?);
            f.burst.push(served.burst(args, r).await?);
            // Each round's figures as they come, so a run stopped early still tells something.
            say(&format!(
                "  round {} of {}, {}: pp512 {:.1}, tg128 {:.1}, 1 stream {:.1}, 4 streams {:.1} t/s, burst {:.1} s",
                r + 1,
                args.reps,
                settings[i],
                f.speed.last().map_or(0.0, |s| s.0),
                f.speed.last().map_or(0.0, |s| s.1),
                f.one.last().copied().unwrap_or(0.0),
                f.four.last().copied().unwrap_or(0.0),
                f.burst.last().copied().unwrap_or(0.0)
            ));
        }
    }
    for (server, _) in servers {
        server.shutdown().await;
    }
    let rows: Vec<Value> = settings
        .iter()
        .zip(figures.iter_mut())
        .map(|(t, f)| {
            let (pp, tg) = mean_pair(&f.speed);
            let one = super::quantile(&mut f.one, 0.5);
            let four = super::quantile(&mut f.four, 0.5);
            json!({
                "threads": t,
                "pp512": round(pp),
                "tg128": round(tg),
                "streams_1": round(one),
                "streams_4": round(four),
                "four_over_one": round(four / one),
                "burst_seconds": round(super::quantile(&mut f.burst, 0.5)),
            })
        })
        .collect();
    Ok(json!(rows))
}

fn mean_pair(v: &[(f64, f64)]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    (v.iter().map(|s| s.0).sum::<f64>() / n, v.iter().map(|s| s.1).sum::<f64>() / n)
}

fn print_report(report: &Value) {
    println!("model {}", report["model"].as_str().unwrap_or_default());
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let threads = |v: &Value| format!("{}/{}", v["decode"], v["batch"]);
    if let Some(m) = report.get("main") {
        println!("main measurement at threads {} (decode/batch)", threads(&m["threads"]));
        println!("{:<28} {:>10} {:>10}", "", "pp512 t/s", "tg128 t/s");
        println!("{:<28} {:>10.1} {:>10.1}", "raw (llama-cpp-2 loop)", f(&m["raw"]["pp512"]), f(&m["raw"]["tg128"]));
        println!(
            "{:<28} {:>10.1} {:>10.1}   ({:.3}× / {:.3}× raw; target ≥ 0.95×)",
            "served (HTTP, one stream)",
            f(&m["served"]["pp512"]),
            f(&m["served"]["tg128"]),
            f(&m["targets"]["served_pp_ratio"]),
            f(&m["targets"]["served_tg_ratio"])
        );
        println!("{:<28} {:>10} {:>10}", "generated t/s, aggregate", "served", "raw");
        for n in ["1", "2", "4", "8"] {
            println!(
                "{:<28} {:>10.1} {:>10.1}",
                format!("concurrent {n} stream(s)"),
                f(&m["concurrent"][n]),
                f(&m["raw_concurrent"][n])
            );
        }
        println!(
            "4 streams / 1 stream: {:.2}× served, {:.2}× raw (target ≥ 1.35×)",
            f(&m["targets"]["concurrent_4_over_1"]),
            f(&m["targets"]["raw_concurrent_4_over_1"])
        );
        println!(
            "kernels: tinyBLAS for batches of ≥ {} tokens; {} narrower calls sent to ggml's own kernels",
            m["kernels"]["tinyblas_min_batch"], m["kernels"]["small_batches"]
        );
        println!(
            "prefix cache: TTFT cold {:.0} ms, warm {:.0} ms ({:.3}×, target ≤ 0.15×; {} tokens from cache)",
            f(&m["prefix_cache"]["ttft_cold_ms"]),
            f(&m["prefix_cache"]["ttft_warm_ms"]),
            f(&m["targets"]["warm_over_cold"]),
            m["prefix_cache"]["cached_tokens"]
        );
        println!("sub-call burst: {:.1} s", f(&m["burst_seconds"]));
        println!("system: {}", m["system"]["llama"].as_str().unwrap_or_default());
    }
    if let Some(c) = report.get("compare") {
        println!(
            "this engine ({}{}) against {} ({}{}), served, threads {}:",
            c["this"]["build"].as_str().unwrap_or("?"),
            c["this"]["cpu_variant"]["name"].as_str().map(|v| format!(", {v}")).unwrap_or_default(),
            c["other"].as_str().unwrap_or("?"),
            c["other_engine"]["build"].as_str().unwrap_or("?"),
            c["other_engine"]["cpu_variant"]["name"].as_str().map(|v| format!(", {v}")).unwrap_or_default(),
            threads(&c["threads"])
        );
        println!(
            "  pp512 {:.1} against {:.1} t/s ({:.3}×; target ≥ 0.95×)",
            f(&c["this"]["pp512"]),
            f(&c["other_engine"]["pp512"]),
            f(&c["other_over_this"]["pp512"])
        );
        println!(
            "  tg128 {:.1} against {:.1} t/s ({:.3}×; target ≥ 0.95×)",
            f(&c["this"]["tg128"]),
            f(&c["other_engine"]["tg128"]),
            f(&c["other_over_this"]["tg128"])
        );
    }
    if let Some(rows) = report.get("thread_settings").and_then(Value::as_array) {
        println!(
            "{:<14} {:>10} {:>10} {:>10} {:>10} {:>8} {:>10}",
            "decode/batch", "pp512", "tg128", "1 stream", "4 streams", "4 / 1", "burst s"
        );
        let base = rows.first().map(|r| f(&r["burst_seconds"])).unwrap_or(0.0);
        for r in rows {
            println!(
                "{:<14} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>7.2}× {:>10.1}  ({:.2}× the first)",
                threads(&r["threads"]),
                f(&r["pp512"]),
                f(&r["tg128"]),
                f(&r["streams_1"]),
                f(&r["streams_4"]),
                f(&r["four_over_one"]),
                f(&r["burst_seconds"]),
                base / f(&r["burst_seconds"]).max(1e-9)
            );
        }
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[derive(Clone)]
struct Served {
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

impl Served {
    /// One rep of the served pp512 and tg128 figures, tokens per second.
    async fn speed(&self, r: usize) -> Result<(f64, f64)> {
        let s = self.stream(json!({"prompt": bench_tokens(PP, 1000 + r as u64), "max_tokens": 1, "ignore_eos": true, "cache_prompt": false})).await?;
        let pp = PP as f64 / s.ttft;
        let s = self.stream(json!({"prompt": bench_tokens(8, 2000 + r as u64), "max_tokens": TG + 1, "ignore_eos": true, "cache_prompt": false})).await?;
        Ok((pp, (s.tokens - 1) as f64 / (s.total - s.ttft)))
    }

    /// Aggregate generated tokens per second of `n` simultaneous streams.
    async fn streams(&self, n: usize, r: usize) -> Result<f64> {
        let start = Instant::now();
        let runs = (0..n).map(|i| {
            let seed = 3000 + (r * 100 + n * 10 + i) as u64;
            self.stream(json!({"prompt": bench_tokens(CONC_PROMPT, seed), "max_tokens": CONC_GEN, "ignore_eos": true, "cache_prompt": false}))
        });
        let mut tokens = 0;
        for result in futures_util::future::join_all(runs).await {
            tokens += result?.tokens;
        }
        Ok(tokens as f64 / start.elapsed().as_secs_f64())
    }

    /// Wall time of the sub-call burst: `--burst` prompts sent at once, as `llm_query_batched`
    /// sends its chunks (the engine serves them four slots at a time), while the REPL waits.
    async fn burst(&self, args: &BenchLlmArgs, r: usize) -> Result<f64> {
        let start = Instant::now();
        let runs = (0..args.burst).map(|i| {
            let seed = 50_000 + (r * 1000 + i) as u64;
            self.stream(json!({"prompt": bench_tokens(args.burst_prompt, seed), "max_tokens": args.burst_gen, "ignore_eos": true, "cache_prompt": false}))
        });
        for result in futures_util::future::join_all(runs).await {
            let s = result?;
            if s.tokens != args.burst_gen {
                bail!("a burst request generated {} tokens, not {}", s.tokens, args.burst_gen);
            }
        }
        Ok(start.elapsed().as_secs_f64())
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
