//! `quarry ask`: answer a question about a folder, in any [`Mode`].
//!
//! Progress goes to stderr — the loop's iterations, code and output summaries as they happen —
//! and the answer to stdout, followed by its sources marked verified (✓) or not (✗), so
//! `quarry ask ... > answer.txt` captures just the answer. `--json` prints JSON lines instead:
//! every event of the run as it happens (`{"type": "iteration_started", ...}`), then the answer
//! object as the last line (`{"type": "result", "answer": ..., "citations": [...], ...}`), so a
//! program can follow the run live and `tail -n 1` is the answer.
//!
//! Every run is recorded in the history (`quarry history`, in the catalog's database) as it
//! happens, through the same [`quarry_rlm::Recorder`] as the window's; `--no-history` skips it.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use quarry_index::history::{History, NewRun};
use quarry_rlm::{AnalystConfig, Answer, CancelToken, Event, Mode, Recorder, StopReason};

use crate::flags::{LoopArgs, ModelArgs};

/// `--mode`'s values: the library's modes, by name.
pub fn mode_parser() -> impl clap::builder::TypedValueParser<Value = Mode> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Mode::ALL.map(Mode::name)).map(|s| s.parse::<Mode>().expect("listed"))
}

#[derive(Args)]
pub struct AskArgs {
    /// How to answer: `auto` (direct when the folder fits the window, else rlm), `rlm`, `direct`
    /// or `rag` (`quarry_rlm::Mode` says why auto is the default).
    #[arg(long, value_parser = mode_parser(), default_value = "auto")]
    mode: Mode,
    /// The folder to analyse, through its collection: indexed into one the first time (named
    /// from the folder), brought up to date after, so a second question starts at once.
    #[arg(long, required_unless_present = "collection", conflicts_with = "collection")]
    folder: Option<PathBuf>,
    /// A collection to analyse (`quarry index add`): its text comes from the index, so
    /// nothing is read again.
    #[arg(long)]
    collection: Option<String>,
    /// Do not OCR scanned pages (pages without a text layer; OCR costs about a second a page):
    /// they are listed as having no text.
    #[arg(long)]
    no_ocr: bool,
    /// The question.
    question: String,
    #[command(flatten)]
    models: ModelArgs,
    #[command(flatten)]
    rlm: LoopArgs,
    /// Longest one-pass answer in tokens.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Save the RLM trajectory as JSON lines (metadata, then one line per iteration).
    #[arg(long)]
    trajectory: Option<PathBuf>,
    /// Print one JSON object with the answer, its citations and statistics instead of text.
    #[arg(long)]
    json: bool,
    /// Do not record this run in the history (`quarry history`).
    #[arg(long)]
    no_history: bool,
}

/// `quarry ask` as it is parsed, for building one from a recorded run (`quarry history rerun`).
#[derive(clap::Parser)]
#[command(name = "quarry ask")]
struct AskCli {
    #[command(flatten)]
    args: AskArgs,
}

/// The arguments that ask `run`'s question again, of the same folder or collection, in the
/// same mode, with the same models.
pub fn rerun_args(run: &quarry_index::history::Run, json: bool, no_history: bool) -> Result<AskArgs> {
    let mut argv: Vec<String> = vec!["quarry ask".into(), "--mode".into(), run.mode.clone()];
    match &run.collection {
        Some(name) => argv.extend(["--collection".into(), name.clone()]),
        None => argv.extend(["--folder".into(), run.folder.clone()]),
    }
    for (key, flag) in
        [("root", "--model"), ("sub", "--sub-model"), ("root_url", "--root-url"), ("sub_url", "--sub-url")]
    {
        if let Some(v) = run.models.get(key).and_then(|v| v.as_str()) {
            argv.extend([flag.into(), v.into()]);
        }
    }
    if let Some(ctx) = run.models.get("ctx").and_then(|v| v.as_u64()) {
        argv.extend(["--ctx".into(), ctx.to_string()]);
    }
    if json {
        argv.push("--json".into());
    }
    if no_history {
        argv.push("--no-history".into());
    }
    // After `--`, a question starting with `-` is still the question.
    argv.extend(["--".into(), run.question.clone()]);
    let cli = <AskCli as clap::Parser>::try_parse_from(&argv)
        .with_context(|| format!("run {} cannot be asked again as it was recorded", run.id))?;
    Ok(cli.args)
}

pub async fn run(args: AskArgs) -> Result<ExitCode> {
    let folder = match (&args.folder, &args.collection) {
        (Some(dir), _) => {
            let started = std::time::Instant::now();
            let mut update = crate::index::UpdateArgs::default();
            update.no_ocr = args.no_ocr;
            let row = match crate::index::folder_collection(dir, &update).await? {
                Ok(row) => row,
                Err(code) => return Ok(code),
            };
            let folder = quarry_index::Library::open_default()?.folder(&row)?;
            crate::progress::print_read(dir, &folder, started);
            folder
        }
        (None, Some(name)) => crate::index::folder(name)?,
        (None, None) => unreachable!("clap requires --folder or --collection"),
    };

    let models = args.models.start().await?;
    let mut config =
        AnalystConfig { window: args.models.ctx, answer_tokens: args.max_tokens, ..AnalystConfig::default() };
    args.rlm.apply(&mut config);
    let analyst = models.analyst(config);

    let cancel = CancelToken::default();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    let mut recorder = if args.no_history { None } else { record(&args, &folder, &models) };
    let mut live = Live { json: args.json, streaming: args.mode != Mode::Rlm, streamed: false, batch: None };
    let result = analyst
        .answer(&folder, &args.question, args.mode, cancel, |e| {
            // Recorded before it is shown: whoever saw an event can find it in the history.
            if let Some(r) = &mut recorder {
                r.record(e);
            }
            live.show(e);
        })
        .await;
    models.shutdown().await;
    let run_id = recorder.and_then(|r| match r.finish(result.as_ref().map_err(|e| e.to_string())) {
        Ok(id) => Some(id),
        Err(e) => {
            eprintln!("warning: this run was not fully recorded in the history: {e}");
            None
        }
    });
    let answer = result.context("could not answer")?;
    if live.streamed {
        println!();
    }

    if let (Some(path), Some(trajectory)) = (&args.trajectory, &answer.trajectory) {
        let file = std::fs::File::create(path).with_context(|| format!("could not write {}", path.display()))?;
        trajectory
            .write_jsonl(std::io::BufWriter::new(file))
            .with_context(|| format!("could not write {}", path.display()))?;
        eprintln!("trajectory saved to {}", path.display());
    }
    if args.json {
        let mut result = serde_json::to_value(&answer)?;
        if let Some(fields) = result.as_object_mut() {
            fields.insert("type".into(), "result".into());
            fields.insert("run_id".into(), run_id.into());
        }
        println!("{result}");
    } else {
        if !live.streamed {
            if let Some(text) = &answer.answer {
                println!("{}", text.trim());
            }
        }
        print_sources(&answer);
    }
    eprintln!("({})", summary(&answer));
    if let Some(id) = run_id {
        eprintln!("saved as run {id} (`quarry history show {id}`)");
    }
    Ok(match answer.stop_reason {
        StopReason::Cancelled => ExitCode::from(130),
        _ => ExitCode::SUCCESS,
    })
}

/// Starts recording the run; a history that cannot be opened costs the record, not the answer.
fn record(args: &AskArgs, folder: &quarry_index::Folder, models: &quarry_rlm::Models) -> Option<Recorder> {
    let mut run = NewRun::new(&args.question, args.mode.name(), folder.root());
    run.collection = args.collection.clone();
    run.models = models.described();
    match History::open_default().and_then(|h| Recorder::start(h, &run)) {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("warning: this run is not recorded in the history: {e}");
            None
        }
    }
}

fn print_sources(answer: &Answer) {
    if answer.citations.is_empty() {
        return;
    }
    println!("\nSources:");
    for c in &answer.citations {
        // Three states: the lines hold the answer's value (✓), the lines exist but there was
        // nothing to look for in them (?), the citation does not hold (✗).
        let mark = match c.status {
            quarry_rlm::CitationStatus::Verified => "✓",
            quarry_rlm::CitationStatus::Unchecked => "?",
            quarry_rlm::CitationStatus::Failed => "✗",
        };
        match &c.problem {
            None if c.status == quarry_rlm::CitationStatus::Unchecked => {
                println!("  {mark} {} (exists; the answer states no quote or number to check in it)", c.location)
            }
            Some(p) => println!("  {mark} {} ({p})", c.location),
            None if c.found => {
                println!("  {mark} {} (the answer cited nothing; found among the lines the run read)", c.location)
            }
            None => println!("  {mark} {}", c.location),
        }
    }
}

pub fn summary(a: &Answer) -> String {
    let verified = a.citations.iter().filter(|c| c.verified).count();
    format!(
        "{}: {} iteration{}, {} sub-call{}, {} tokens ({} cached), {}/{} citations verified, {:.1} s; ended by {}",
        a.mode.name(),
        a.iterations,
        if a.iterations == 1 { "" } else { "s" },
        a.sub_calls,
        if a.sub_calls == 1 { "" } else { "s" },
        a.usage.total(),
        a.usage.cached_tokens,
        verified,
        a.citations.len(),
        a.seconds,
        serde_json::to_value(a.stop_reason).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
    )
}

/// Renders events as they come: one-pass answers stream to stdout; the loop's steps go to stderr,
/// with one progress bar across each burst of sub-calls.
struct Live {
    json: bool,
    streaming: bool,
    streamed: bool,
    batch: Option<Batch>,
}

struct Batch {
    bar: indicatif::ProgressBar,
    started: std::time::Instant,
    failed: usize,
}

impl Live {
    fn show(&mut self, event: &Event) {
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        }
        // `auto` may hand the question to the loop, whose model turns are code, not the answer.
        if matches!(event, Event::IterationStarted { .. }) {
            self.streaming = false;
        }
        if let Event::ModelDelta { text } = event {
            if self.streaming && !self.json {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
                self.streamed = true;
            }
            return;
        }
        if self.json && !matches!(event, Event::Notice { .. }) {
            return;
        }
        match event {
            Event::SubCallStarted { .. } => {
                let batch = self.batch.get_or_insert_with(|| {
                    let bar = if std::io::stderr().is_terminal() {
                        indicatif::ProgressBar::new(0)
                    } else {
                        indicatif::ProgressBar::hidden()
                    };
                    bar.set_style(
                        indicatif::ProgressStyle::with_template("  ↳ sub-calls {bar:24} {pos}/{len} {elapsed}")
                            .expect("valid template"),
                    );
                    Batch { bar, started: std::time::Instant::now(), failed: 0 }
                });
                batch.bar.inc_length(1);
            }
            Event::SubCallFinished { ok, .. } => {
                if let Some(batch) = &mut self.batch {
                    batch.bar.inc(1);
                    batch.failed += usize::from(!ok);
                    if batch.bar.length() == Some(batch.bar.position()) {
                        batch.bar.finish_and_clear();
                        let n = batch.bar.position();
                        eprintln!(
                            "  ↳ {n} sub-call{} in {:.1} s{}",
                            if n == 1 { "" } else { "s" },
                            batch.started.elapsed().as_secs_f64(),
                            if batch.failed > 0 { format!(", {} failed", batch.failed) } else { String::new() }
                        );
                        self.batch = None;
                    }
                }
            }
            _ => render(event),
        }
    }
}

/// One readable line (or a few) per loop event; model deltas are not echoed, the code is.
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
        // The mode `auto` chose is news, not a warning.
        Event::Notice { message } if message.starts_with("auto: ") => eprintln!("{message}"),
        Event::Notice { message } => eprintln!("warning: {message}"),
        Event::Error { message } => eprintln!("  ! {message}"),
        _ => {}
    }
}
