//! `quarry index add|list|status|update|rm|watch`: collections, a folder indexed once and kept up to
//! date (quarry_index::collection). Updates show a bar of bytes and files with rate, ETA and
//! errors; Ctrl-C stops one cleanly, keeping every committed batch, and the next `update`
//! resumes. Data lives in `$QUARRY_DATA_DIR`, else the user's data dir.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use quarry_index::collection::{CollectionRow, CollectionStatus};
use quarry_index::{Library, UpdateEvent, UpdateOptions, UpdateReport};
use quarry_models::human_bytes;

#[derive(Subcommand)]
pub enum IndexCommand {
    /// Index a folder as a collection (again: bring it up to date).
    Add {
        dir: PathBuf,
        /// The collection's name (default: the folder's name).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        update: UpdateArgs,
    },
    /// The collections, one line each.
    List {
        #[arg(long)]
        json: bool,
    },
    /// What a collection holds: files, pages, bytes, formats, and the files that gave no text,
    /// grouped by reason.
    Status {
        /// The collection (default: every one).
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Re-read what changed in a collection's folder (default: every collection).
    Update {
        name: Option<String>,
        #[command(flatten)]
        update: UpdateArgs,
    },
    /// Forget a collection: its catalog rows and its index (the folder is not touched).
    Rm { name: String },
    /// Keep a collection up to date as its folder changes (default: every collection), until
    /// Ctrl-C: a saved file is searchable within 2 s.
    Watch {
        name: Option<String>,
        /// Rescan every 2 s instead of watching (what happens anyway where the folder cannot be
        /// watched).
        #[arg(long)]
        poll: bool,
        #[command(flatten)]
        update: UpdateArgs,
    },
}

#[derive(Args, Clone, Default)]
pub struct UpdateArgs {
    /// Do not OCR scanned pages (about a second a page); they are listed without text.
    #[arg(long)]
    pub no_ocr: bool,
    /// Reading workers (0: one per CPU, at most 4).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Commit after this many files (tests: small batches give a kill more moments to hit).
    #[arg(long, hide = true)]
    batch_files: Option<usize>,
}

impl UpdateArgs {
    pub fn options(&self) -> UpdateOptions {
        let mut o = UpdateOptions::default();
        if let Some(c) = o.extractor.as_mut() {
            c.ocr = !self.no_ocr;
        }
        o.workers = self.workers;
        if let Some(n) = self.batch_files {
            o.batch_files = n.max(1);
        }
        o
    }
}

pub async fn run(cmd: IndexCommand) -> Result<ExitCode> {
    match cmd {
        IndexCommand::Add { dir, name, update } => {
            let mut library = Library::open_default()?;
            let row = library.add(&dir, name.as_deref())?;
            eprintln!("collection {} holds {}", row.name, row.root.display());
            let (report, code) = update_with_bars(library, row.clone(), update.options()).await?;
            print_report(&row, &report);
            Ok(code)
        }
        IndexCommand::Update { name, update } => {
            let library = Library::open_default()?;
            let rows = match &name {
                Some(n) => vec![library.get(n)?],
                None => library.collections()?,
            };
            drop(library);
            for row in rows {
                let library = Library::open_default()?;
                let (report, code) = update_with_bars(library, row.clone(), update.options()).await?;
                print_report(&row, &report);
                if code != ExitCode::SUCCESS {
                    return Ok(code);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        IndexCommand::List { json } => {
            let library = Library::open_default()?;
            let statuses =
                library.collections()?.iter().map(|c| library.status(c)).collect::<quarry_index::Result<Vec<_>>>()?;
            let mut out = std::io::stdout().lock();
            if statuses.is_empty() && !json {
                eprintln!("no collections yet; add one with `quarry index add DIR`");
            }
            for s in &statuses {
                let written = match json {
                    true => writeln!(out, "{}", serde_json::to_string(&list_json(s))?),
                    false => writeln!(
                        out,
                        "{}\t{}\t{} files\t{} pages\t{}\t{}",
                        s.name,
                        s.root.display(),
                        s.files,
                        s.pages,
                        human_bytes(s.bytes),
                        updated(s.updated_at)
                    ),
                };
                if !written_or_closed(written)? {
                    break;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        IndexCommand::Status { name, json } => {
            let library = Library::open_default()?;
            let rows = match &name {
                Some(n) => vec![library.get(n)?],
                None => library.collections()?,
            };
            let mut out = std::io::stdout().lock();
            for row in &rows {
                let s = library.status(row)?;
                let written = match json {
                    true => writeln!(out, "{}", serde_json::to_string(&s)?),
                    false => print_status(&mut out, &s),
                };
                if !written_or_closed(written)? {
                    break;
                }
            }
            if rows.is_empty() && !json {
                eprintln!("no collections yet; add one with `quarry index add DIR`");
            }
            Ok(ExitCode::SUCCESS)
        }
        IndexCommand::Watch { name, poll, update } => watch(name, poll, update).await,
        IndexCommand::Rm { name } => {
            let mut library = Library::open_default()?;
            let row = library.remove(&name)?;
            eprintln!("removed collection {} ({}); the folder itself is untouched", row.name, row.root.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `quarry index watch`: quarry_index::collection::watch on a blocking thread, one line per
/// update that changed something; Ctrl-C stops it between (or inside) updates, keeping every
/// committed batch.
async fn watch(name: Option<String>, poll: bool, update: UpdateArgs) -> Result<ExitCode> {
    use quarry_index::collection::{watch, WatchEvent, WatchOptions};
    let mut library = Library::open_default()?;
    let rows = match &name {
        Some(n) => vec![library.get(n)?],
        None => library.collections()?,
    };
    if rows.is_empty() {
        anyhow::bail!("there is no collection to watch; add one with `quarry index add DIR`");
    }
    let (cancel, watcher) = crate::progress::cancel_on_ctrl_c();
    let options = WatchOptions { update: update.options(), poll, ..Default::default() };
    let result = tokio::task::spawn_blocking(move || {
        let mut first = vec![true; rows.len()];
        watch::watch(
            &mut library,
            &rows,
            &options,
            &mut |e| match e {
                WatchEvent::Watching { collection } => {
                    eprintln!("watching {} ({}); Ctrl-C stops", collection.name, collection.root.display())
                }
                WatchEvent::Polling { reason } => {
                    eprintln!("note: {reason}; rescanning every {} s instead", watch::POLL_EVERY.as_secs())
                }
                WatchEvent::WatcherError { message } => {
                    eprintln!("warning: the file watcher reported {message}; rescanning")
                }
                WatchEvent::Updated { collection, report } => {
                    let i = rows.iter().position(|r| r.id == collection.id).unwrap_or(0);
                    if std::mem::take(&mut first[i]) || report.indexed + report.failed + report.removed > 0 {
                        print_report(collection, report);
                    }
                }
            },
            &cancel,
        )
    })
    .await
    .context("the watch thread stopped")?;
    watcher.abort();
    result?;
    eprintln!("stopped watching");
    Ok(ExitCode::SUCCESS)
}

/// `Ok(false)` when stdout was closed (`quarry index status | head`): stop printing, quietly.
fn written_or_closed(r: std::io::Result<()>) -> Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn list_json(s: &CollectionStatus) -> serde_json::Value {
    serde_json::json!({
        "name": s.name, "root": s.root, "files": s.files, "indexed": s.indexed, "failed": s.failed,
        "pending": s.pending, "pages": s.pages, "bytes": s.bytes, "updated_at": s.updated_at,
    })
}

fn updated(at: Option<i64>) -> String {
    let Some(at) = at else { return "never completed".into() };
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(at);
    match (now - at).max(0) {
        s if s < 90 => format!("updated {s} s ago"),
        s if s < 90 * 60 => format!("updated {} min ago", s / 60),
        s if s < 36 * 3600 => format!("updated {} h ago", s / 3600),
        s => format!("updated {} days ago", s / 86400),
    }
}

fn print_status(out: &mut impl Write, s: &CollectionStatus) -> std::io::Result<()> {
    writeln!(out, "{}  {}", s.name, s.root.display())?;
    writeln!(
        out,
        "  {} files: {} indexed, {} without text{}",
        s.files,
        s.indexed,
        s.failed,
        if s.pending > 0 {
            format!(", {} not read yet (run `quarry index update {}`)", s.pending, s.name)
        } else {
            String::new()
        }
    )?;
    writeln!(
        out,
        "  {} pages, {} of files, {} of text in {} chunks; index {}",
        s.pages,
        human_bytes(s.bytes),
        human_bytes(s.text_bytes),
        s.chunks,
        human_bytes(s.index_bytes)
    )?;
    if !s.formats.is_empty() {
        let formats: Vec<String> = s
            .formats
            .iter()
            .map(|f| format!("{} {} ({} pages, {})", f.files, f.format, f.pages, human_bytes(f.bytes)))
            .collect();
        writeln!(out, "  formats: {}", formats.join(", "))?;
    }
    for e in &s.errors {
        writeln!(out, "  {} ({} file{}):", e.reason, e.files.len(), if e.files.len() == 1 { "" } else { "s" })?;
        for f in &e.files {
            writeln!(out, "    {f}")?;
        }
    }
    writeln!(out, "  {}, {} batch{}", updated(s.updated_at), s.batches, if s.batches == 1 { "" } else { "es" })?;
    Ok(())
}

fn print_report(row: &CollectionRow, r: &UpdateReport) {
    let rate = if r.seconds > 0.0 { r.bytes_read as f64 / r.seconds / 1e6 } else { 0.0 };
    eprintln!(
        "{} {}: {} files, {} read ({} indexed, {} without text{}), {} unchanged, {} removed; {} in {:.1} s ({rate:.1} MB/s), {} batch{}{}",
        if r.cancelled { "Stopped" } else { "Updated" },
        row.name,
        r.files,
        r.indexed + r.failed + r.same_content,
        r.indexed,
        r.failed,
        if r.same_content > 0 { format!(", {} unchanged content", r.same_content) } else { String::new() },
        r.unchanged,
        r.removed,
        human_bytes(r.bytes_read),
        r.seconds,
        r.batches,
        if r.batches == 1 { "" } else { "es" },
        if r.rolled_forward + r.rolled_back > 0 {
            format!("; recovered an interrupted run ({} batches applied, {} dropped)", r.rolled_forward, r.rolled_back)
        } else {
            String::new()
        }
    );
    if r.changed_while_reading > 0 {
        eprintln!("  {} files changed while they were read; the next update reads them", r.changed_while_reading);
    }
    if r.cancelled {
        eprintln!("  what was committed is kept; `quarry index update {}` resumes", row.name);
    }
}

/// Runs one update on a blocking thread with a bar (bytes, files, errors, rate, ETA) and
/// Ctrl-C wired to its cancel token.
pub async fn update_with_bars(
    mut library: Library,
    row: CollectionRow,
    options: UpdateOptions,
) -> Result<(UpdateReport, ExitCode)> {
    let (cancel, watcher) = crate::progress::cancel_on_ctrl_c();
    let tty = std::io::stderr().is_terminal();
    let name = row.name.clone();
    let token = cancel.clone();
    let report = tokio::task::spawn_blocking(move || {
        let bar = if tty { ProgressBar::new(0) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:28}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {wide_msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        let counts = Mutex::new((0usize, 0usize, 0usize)); // done, to do, errors
        let report = library.update(
            &row,
            &options,
            &|e| match e {
                UpdateEvent::Scanned { to_read, bytes_to_read, .. } => {
                    bar.set_length(*bytes_to_read);
                    counts.lock().unwrap().1 = *to_read;
                    bar.set_prefix(format!("0/{to_read} files"));
                }
                UpdateEvent::Read { bytes, ok, reason, path } => {
                    let mut c = counts.lock().unwrap();
                    c.0 += 1;
                    c.2 += usize::from(!ok);
                    bar.inc(*bytes);
                    bar.set_prefix(format!("{}/{} files", c.0, c.1));
                    if let (false, Some(reason)) = (ok, reason) {
                        bar.set_message(format!("{} errors; last {path}: {reason}", c.2));
                    }
                }
                UpdateEvent::Ocr { path, page, done, of } => {
                    bar.set_message(format!("OCR {path} p. {page} ({done}/{of})"))
                }
                UpdateEvent::Recovered { rolled_forward, rolled_back } => bar.println(format!(
                    "recovering an interrupted run: {rolled_forward} committed batches applied, {rolled_back} uncommitted dropped"
                )),
                UpdateEvent::Committed { .. } => {}
            },
            Some(&token),
        );
        bar.finish_and_clear();
        report
    })
    .await
    .context("the update thread stopped")?;
    watcher.abort();
    let report = report.with_context(|| format!("could not update collection {name}"))?;
    let code = if report.cancelled { ExitCode::from(130) } else { ExitCode::SUCCESS };
    Ok((report, code))
}

/// The collection of folder `dir`, brought up to date: added (named from the folder) and indexed
/// when the folder has none, else updated, which for an unchanged folder only compares each
/// file's stat with the catalog (a no-change update of 20,000 files takes under 2 s, issue 15).
/// `quarry grep --folder` and `quarry ask --folder` both search through it, so a second question
/// about the same folder starts at once. `Err` carries the exit code of an update stopped by
/// Ctrl-C.
pub async fn folder_collection(
    dir: &std::path::Path,
    update: &UpdateArgs,
) -> Result<std::result::Result<CollectionRow, ExitCode>> {
    let mut library = Library::open_default()?;
    let row = match library.find_root(dir)? {
        Some(row) => row,
        None => {
            let row = library.add(dir, None)?;
            eprintln!("indexing {} as collection {} first", row.root.display(), row.name);
            row
        }
    };
    let (report, code) = update_with_bars(library, row.clone(), update.options()).await?;
    print_report(&row, &report);
    if code != ExitCode::SUCCESS {
        return Ok(Err(code));
    }
    Ok(Ok(row))
}

/// A collection's documents from its index, for `quarry ask --collection`, with one line of
/// what it holds (and a warning when an update is unfinished).
pub fn folder(name: &str) -> Result<quarry_index::Folder> {
    let library = Library::open_default()?;
    let row = library.get(name)?;
    let status = library.status(&row)?;
    let folder = library.folder(&row)?;
    eprintln!(
        "Collection {}: {} files, {} pages, {} of text from the index{}",
        row.name,
        status.indexed,
        status.pages,
        human_bytes(status.text_bytes),
        if status.failed > 0 { format!("; {} without text", status.failed) } else { String::new() }
    );
    if status.pending > 0 {
        eprintln!(
            "warning: {} files of {} are not indexed yet; `quarry index update {}` reads them",
            status.pending, row.name, row.name
        );
    }
    Ok(folder)
}
