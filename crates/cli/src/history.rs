//! `quarry history list|show|search|export|rm|rerun`: the questions asked before, by `quarry ask`
//! and the window alike (quarry_index::history, in the catalog's database under
//! `$QUARRY_DATA_DIR`). A run killed half-way is listed as interrupted, with what it had.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use quarry_index::history::{utc, ExportFormat, History, ListFilter, RunStatus, RunSummary};
use serde_json::Value;

#[derive(Subcommand)]
pub enum HistoryCommand {
    /// The runs, newest first: id, status, when, mode, folder or collection, question.
    List {
        /// Only the runs asked of this collection.
        #[arg(long)]
        collection: Option<String>,
        /// Only the runs with this status: running, done, failed, cancelled or interrupted.
        #[arg(long)]
        status: Option<RunStatus>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// One run: its question, answer, sources, models and how it went (`--json`: with every
    /// event).
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// The runs whose question or answer hold these words, best match first.
    Search {
        text: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// A run as Markdown (question, answer, sources, each turn's code and output), as JSON (the
    /// whole run) or as JSON lines (its events).
    Export {
        id: i64,
        #[arg(long, default_value = "md")]
        format: ExportFormat,
        /// Write here instead of to stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Forget runs and their events.
    Rm {
        #[arg(required = true)]
        ids: Vec<i64>,
    },
    /// Ask a run's question again: the same folder or collection, mode and models.
    Rerun {
        id: i64,
        #[arg(long)]
        json: bool,
        /// Do not record the new run.
        #[arg(long)]
        no_history: bool,
    },
}

fn open() -> Result<History> {
    Ok(History::open_default()?)
}

pub async fn run(cmd: HistoryCommand) -> Result<ExitCode> {
    match cmd {
        HistoryCommand::List { collection, status, limit, json } => {
            let runs = open()?.list(&ListFilter { collection, folder: None, status, limit })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else if runs.is_empty() {
                eprintln!("no runs yet; `quarry ask` records every question");
            } else {
                print_lines(&runs, false);
            }
        }
        HistoryCommand::Show { id, json } => {
            let run = open()?.get(id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                println!("{}", run.question.trim());
                println!();
                match run.answer.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
                    Some(a) => println!("{a}"),
                    None => println!("(no answer)"),
                }
                print_sources(&run.citations);
                println!();
                println!("run {} · {} · {}", run.id, run.status.as_str(), utc(run.started_ms));
                match &run.collection {
                    Some(c) => println!("collection {c} ({})", run.folder),
                    None => println!("folder {}", run.folder),
                }
                let model = |k: &str| run.models.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
                println!("mode {} · root {} · sub {}", run.mode, model("root"), model("sub"));
                if let Some(e) = &run.error {
                    println!("error: {e}");
                }
                let turns = run.events.iter().filter(|e| e["type"] == "iteration_started").count();
                println!(
                    "{} events, {turns} turn{} (`quarry history export {}` shows them)",
                    run.events.len(),
                    if turns == 1 { "" } else { "s" },
                    run.id
                );
            }
        }
        HistoryCommand::Search { text, limit, json } => {
            let runs = open()?.search(&text, limit)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else if runs.is_empty() {
                eprintln!("no run's question or answer holds {text:?}");
            } else {
                print_lines(&runs, true);
            }
        }
        HistoryCommand::Export { id, format, output } => {
            let text = open()?.export(id, format)?;
            match output {
                Some(path) => {
                    std::fs::write(&path, text).with_context(|| format!("could not write {}", path.display()))?;
                    eprintln!("run {id} written to {}", path.display());
                }
                None => print!("{text}"),
            }
        }
        HistoryCommand::Rm { ids } => {
            let history = open()?;
            for id in ids {
                history.remove(id)?;
                eprintln!("removed run {id}");
            }
        }
        HistoryCommand::Rerun { id, json, no_history } => {
            let run = open()?.get(id)?;
            eprintln!("asking run {id}'s question again: {}", run.question.trim());
            let args = crate::ask::rerun_args(&run, json, no_history)?;
            return crate::ask::run(args).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line a run: `12  done         2026-12-02 17:07 UTC  rlm     contracts  Which …`.
fn print_lines(runs: &[RunSummary], snippets: bool) {
    for r in runs {
        let place = r.collection.clone().unwrap_or_else(|| {
            std::path::Path::new(&r.folder).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        });
        println!(
            "{:>4}  {:<11}  {}  {:<6}  {:<16}  {}",
            r.id,
            r.status.as_str(),
            utc(r.started_ms),
            r.mode,
            place,
            r.question.lines().next().unwrap_or("").trim()
        );
        if snippets {
            if let Some(s) = &r.snippet {
                println!("      {}", s.replace('\n', " "));
            }
        }
    }
}

/// The recorded citations, marked as `quarry ask` marks them.
fn print_sources(citations: &Value) {
    let Some(list) = citations.as_array().filter(|l| !l.is_empty()) else { return };
    println!("\nSources:");
    for c in list {
        let status = c["status"].as_str().unwrap_or("failed");
        let mark = match status {
            "verified" => "✓",
            "unchecked" => "?",
            _ => "✗",
        };
        let location = c["location"].as_str().or(c["path"].as_str()).unwrap_or("?");
        match c["problem"].as_str() {
            Some(p) => println!("  {mark} {location} ({p})"),
            None => println!("  {mark} {location}"),
        }
    }
}
