//! `quarry eval`: answer every task of an evaluation file (the evaluation kit's format:
//! one JSON task per line with `id`, `context_dir` relative to the file, and `question`) and
//! write one prediction line per task, which `evalkit.py score` scores.
//!
//! One engine serves the whole run. Predictions are appended and flushed as each task finishes,
//! so an interrupted run resumes where it stopped (tasks already in `--out` are skipped); a task
//! cancelled half-way is not written and runs again next time.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use quarry_index::Folder;
use quarry_rlm::{AnalystConfig, Answer, CancelToken, Mode, StopReason};
use serde::Deserialize;

use crate::ask::{mode_parser, summary};
use crate::flags::{LoopArgs, ModelArgs};

#[derive(Args)]
pub struct EvalArgs {
    /// The tasks file (`tasks.jsonl` written by `evalkit.py gen`).
    tasks: PathBuf,
    #[arg(long, value_parser = mode_parser())]
    mode: Mode,
    /// Where predictions go; tasks already in it are skipped (resume).
    #[arg(long)]
    out: PathBuf,
    /// Only these kinds (comma-separated: sniah, oolong, pairs, codeqa, contracts).
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    /// Only these sizes (comma-separated, as in `meta.size`: 8k, 32k, 128k, 1m).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<String>,
    /// Only these task ids (comma-separated).
    #[arg(long, value_delimiter = ',')]
    ids: Vec<String>,
    /// At most this many tasks per kind and size, in file order.
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    models: ModelArgs,
    /// Longest one-pass answer in tokens.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    #[command(flatten)]
    rlm: LoopArgs,
    /// Save each RLM trajectory as DIR/<task id>.jsonl.
    #[arg(long)]
    trajectories: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Task {
    id: String,
    #[serde(default)]
    kind: String,
    context_dir: String,
    question: String,
    #[serde(default)]
    meta: Meta,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    size: String,
}

pub async fn run(args: EvalArgs) -> Result<ExitCode> {
    let tasks = select(&args, read_tasks(&args.tasks)?);
    let done = resume(&args.out)?;
    let todo: Vec<&Task> = tasks.iter().filter(|t| !done.contains(&t.id)).collect();
    eprintln!(
        "{} tasks selected from {}; {} already in {}; {} to run in {} mode",
        tasks.len(),
        args.tasks.display(),
        tasks.len() - todo.len(),
        args.out.display(),
        todo.len(),
        args.mode.name()
    );
    if todo.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(dir) = &args.trajectories {
        std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    }
    let base = args.tasks.parent().unwrap_or(Path::new(".")).to_path_buf();

    let models = args.models.start().await?;
    let mut config =
        AnalystConfig { window: args.models.ctx, answer_tokens: args.max_tokens, ..AnalystConfig::default() };
    args.rlm.apply(&mut config);
    let analyst = models.analyst(config);
    let (root_name, sub_name) = (models.root.name().to_string(), models.sub.name().to_string());

    let cancel = CancelToken::default();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });

    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)
        .with_context(|| format!("could not open {}", args.out.display()))?;
    let bar = ProgressBar::new(todo.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} tasks, {elapsed} (eta {eta}) {msg}")
            .expect("valid template"),
    );
    let mut answers: Vec<Answer> = Vec::new();
    for task in todo {
        bar.set_message(task.id.clone());
        let dir = base.join(&task.context_dir);
        let folder = match Folder::load(&dir) {
            Ok(f) => f,
            Err(e) => {
                say(&bar, format!("✗ {}: {e}", task.id));
                bar.inc(1);
                continue;
            }
        };
        let result = analyst.answer(&folder, &task.question, args.mode, cancel.clone(), |_| {}).await;
        let answer = match result {
            Ok(a) => a,
            Err(e) => {
                say(&bar, format!("✗ {}: {e:#} (not written; it runs again on resume)", task.id));
                bar.inc(1);
                continue;
            }
        };
        if answer.stop_reason == StopReason::Cancelled {
            bar.abandon_with_message("cancelled; run the same command again to resume");
            models.shutdown().await;
            return Ok(ExitCode::from(130));
        }
        if let (Some(dir), Some(t)) = (&args.trajectories, &answer.trajectory) {
            let path = dir.join(format!("{}.jsonl", task.id));
            let file = std::fs::File::create(&path).with_context(|| format!("could not write {}", path.display()))?;
            t.write_jsonl(std::io::BufWriter::new(file))
                .with_context(|| format!("could not write {}", path.display()))?;
        }
        let line = serde_json::json!({
            "id": task.id,
            "answer": answer.answer.clone().unwrap_or_default(),
            "seconds": answer.seconds,
            "tokens": answer.usage.total(),
            "mode": answer.mode,
            "root_model": root_name,
            "sub_model": sub_name,
            "stop_reason": answer.stop_reason,
            "format_ok": answer.format_ok(),
            "iterations": answer.iterations,
            "sub_calls": answer.sub_calls,
            "citations": answer.citations.len(),
            "citations_verified": answer.citations.iter().filter(|c| c.verified).count(),
            // What the evidence check found: answers sent back, and whether the answer taken
            // still came before its evidence (with --no-final-check, every premature one).
            "premature_sent_back": answer.trajectory.as_ref().map_or(0, |t| t.sent_back()),
            "final_premature": answer.trajectory.as_ref().and_then(|t| t.premature_answer()),
        });
        writeln!(out, "{line}")
            .and_then(|_| out.flush())
            .with_context(|| format!("could not write {}", args.out.display()))?;
        let preview: String = answer.answer.as_deref().unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
        say(&bar, format!("{} {} — {}", task.id, summary(&answer), preview.chars().take(100).collect::<String>()));
        bar.inc(1);
        answers.push(answer);
    }
    bar.finish_and_clear();
    models.shutdown().await;

    let n = answers.len();
    if n > 0 {
        let ok = answers.iter().filter(|a| a.format_ok()).count();
        let mut secs: Vec<f64> = answers.iter().map(|a| a.seconds).collect();
        secs.sort_by(f64::total_cmp);
        let cites: usize = answers.iter().map(|a| a.citations.len()).sum();
        let verified: usize = answers.iter().map(|a| a.citations.iter().filter(|c| c.verified).count()).sum();
        let trajectories = || answers.iter().filter_map(|a| a.trajectory.as_ref());
        let sent_back = trajectories().filter(|t| t.sent_back() > 0).count();
        let premature = trajectories().filter(|t| t.premature_answer().is_some()).count();
        eprintln!(
            "{n} tasks, {} mode, root {}, sub {}: format success {ok}/{n} ({:.0}%), median {:.1} s per task, {verified}/{cites} citations verified, {premature}/{n} answers before their evidence ({sent_back} runs had one sent back)",
            args.mode.name(),
            root_name,
            sub_name,
            100.0 * ok as f64 / n as f64,
            secs[n / 2]
        );
    }
    eprintln!("score with: python3 evalkit.py score --tasks {} --pred {}", args.tasks.display(), args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// A line above the bar, or on stderr when there is no bar (indicatif drops `println` on a
/// hidden bar, and logs of long runs need these lines most).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn read_tasks(path: &Path) -> Result<Vec<Task>> {
    let file = std::fs::File::open(path).with_context(|| format!("could not open {}", path.display()))?;
    let mut tasks = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("could not read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let task: Task = serde_json::from_str(&line).with_context(|| {
            format!("{}:{}: not a task (needs id, context_dir and question)", path.display(), i + 1)
        })?;
        tasks.push(task);
    }
    if tasks.is_empty() {
        bail!("{} holds no tasks", path.display());
    }
    Ok(tasks)
}

fn select(args: &EvalArgs, tasks: Vec<Task>) -> Vec<Task> {
    let mut per_group: std::collections::HashMap<(String, String), usize> = Default::default();
    tasks
        .into_iter()
        .filter(|t| args.kinds.is_empty() || args.kinds.contains(&t.kind))
        .filter(|t| args.sizes.is_empty() || args.sizes.contains(&t.meta.size))
        .filter(|t| args.ids.is_empty() || args.ids.contains(&t.id))
        .filter(|t| {
            let n = per_group.entry((t.kind.clone(), t.meta.size.clone())).or_default();
            *n += 1;
            args.limit.is_none_or(|l| *n <= l)
        })
        .collect()
}

/// Ids already predicted. A last line cut off by a crash is dropped (the file is truncated to
/// its last complete line), so appending stays valid JSON lines.
fn resume(out: &Path) -> Result<HashSet<String>> {
    let Ok(text) = std::fs::read_to_string(out) else {
        return Ok(HashSet::new());
    };
    if !text.is_empty() && !text.ends_with('\n') {
        let keep = text.rfind('\n').map_or(0, |p| p + 1);
        let file = std::fs::OpenOptions::new().write(true).open(out)?;
        file.set_len(keep as u64).with_context(|| format!("could not repair {}", out.display()))?;
        return resume(out);
    }
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("id").and_then(|i| i.as_str()).map(String::from))
        .collect())
}
