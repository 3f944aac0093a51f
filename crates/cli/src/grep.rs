//! `quarry grep PATTERN (--collection N | --folder DIR) [-i] [-F] [-g GLOB]... [--json]`: the
//! grep the model has, over a collection's extracted text, with ripgrep's matcher and line
//! semantics (quarry_index::collection::grep). It prints `path:line:text` as `rg` does, and
//! `path:page:line:text` for paged documents (the page's label, the line within it); `--json`
//! prints one match per line with its byte ranges. `--folder` uses the folder's collection,
//! indexing it first when it has none and updating it when it has one
//! (`crate::index::folder_collection`, shared with `quarry ask --folder`). Exit code 1 when nothing matched, as `rg`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use quarry_index::collection::GrepOptions;
use quarry_index::Library;

#[derive(Args)]
pub struct GrepArgs {
    /// A regular expression (Rust regex syntax, as `rg`), or a literal with -F.
    pattern: String,
    /// The collection to search.
    #[arg(long, required_unless_present = "folder", conflicts_with = "folder")]
    collection: Option<String>,
    /// The folder to search, through its collection (added and indexed when it has none).
    #[arg(long)]
    folder: Option<PathBuf>,
    #[arg(short = 'i', long)]
    ignore_case: bool,
    /// The pattern is a literal string.
    #[arg(short = 'F', long)]
    fixed_strings: bool,
    /// Only files matching this glob (`!GLOB` excludes), as `rg -g`; repeatable.
    #[arg(short = 'g', long = "glob")]
    globs: Vec<String>,
    /// Stop after this many matching lines.
    #[arg(long, default_value_t = 0)]
    max: usize,
    /// One JSON object per matching line: path, page, page_label, line, page_line, text, ranges.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: GrepArgs) -> Result<ExitCode> {
    let mut library = Library::open_default()?;
    let row = match (&args.collection, &args.folder) {
        (Some(name), _) => library.get(name)?,
        (None, Some(dir)) => match crate::index::folder_collection(dir, &Default::default()).await? {
            Ok(row) => {
                library = Library::open_default()?;
                row
            }
            Err(code) => return Ok(code),
        },
        (None, None) => unreachable!("clap requires --collection or --folder"),
    };
    let options = GrepOptions {
        ignore_case: args.ignore_case,
        fixed: args.fixed_strings,
        globs: args.globs.clone(),
        max: args.max,
        ..Default::default()
    };
    let report = library.grep(&row, &args.pattern, &options)?;
    let mut out = std::io::stdout().lock();
    for h in &report.hits {
        let written = if args.json {
            writeln!(out, "{}", serde_json::to_string(h)?)
        } else if h.paged {
            writeln!(out, "{}:{}:{}:{}", h.path, h.page_label, h.page_line, h.text)
        } else {
            writeln!(out, "{}:{}:{}", h.path, h.line, h.text)
        };
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(if report.hits.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
