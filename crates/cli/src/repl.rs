//! `quarry repl`: the sandboxed Python an RLM's root model gets, for people and for tests.
//! Interactive by default; `--exec FILE` runs one file, `--json` prints the `ReplResult`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use quarry_repl::{Context, ContextDocument, Environment, HostFunctions, NoHost, Repl, ReplResult, SandboxConfig};

#[derive(Args)]
pub struct ReplArgs {
    /// Bind this folder's documents to `context` (read-only) and serve files()/read()/grep()/search()
    /// over it, exactly as the RLM's root model gets them.
    #[arg(long)]
    folder: Option<PathBuf>,
    /// Run this Python file in the sandbox and exit.
    #[arg(long)]
    exec: Option<PathBuf>,
    /// With --exec: print the result as one JSON object (and exit 0 even if the code raised).
    #[arg(long, requires = "exec")]
    json: bool,
    /// Wall-clock limit of one execution, in seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Address-space limit of the worker, in MiB.
    #[arg(long, default_value_t = 4096)]
    memory_mib: u64,
    /// Characters kept of each output (head + tail).
    #[arg(long, default_value_t = 8000)]
    output_budget: usize,
    /// UNCONFINED MODE — DANGEROUS: if this kernel lacks Landlock, seccomp or rlimits, run
    /// model-written code without them instead of refusing.
    #[arg(long)]
    allow_unconfined: bool,
}

pub fn run(args: ReplArgs) -> Result<ExitCode> {
    let mut config = SandboxConfig {
        timeout: Duration::try_from_secs_f64(args.timeout).context("--timeout must be a positive number")?,
        output_budget: args.output_budget,
        allow_unconfined: args.allow_unconfined,
        ..Default::default()
    };
    config.limits.memory_bytes = args.memory_mib << 20;

    let mut context = None;
    let host: Arc<dyn HostFunctions> = match &args.folder {
        Some(dir) => {
            let folder = quarry_index::Folder::load(dir).with_context(|| format!("reading {}", dir.display()))?;
            config.readable.push(folder.root().to_path_buf());
            let docs: Vec<ContextDocument> = folder
                .entries()
                .map(|(d, layout)| ContextDocument {
                    path: d.path.clone(),
                    text: d.text.clone(),
                    pages: quarry_rlm::page_marks(layout),
                })
                .collect();
            // The RLM's own document functions, over the same Corpus (quarry_rlm::CorpusHost).
            let host = quarry_rlm::CorpusHost::new(Arc::new(quarry_index::MemoryCorpus::of_folder(&folder)));
            context = Some(Context::Documents(docs));
            Arc::new(host)
        }
        None => Arc::new(NoHost),
    };

    let mut repl = Repl::new(config, host)?;
    if !repl.info().missing.is_empty() {
        eprintln!("warning: UNCONFINED — the sandbox lacks: {}", repl.info().missing.join("; "));
    }
    if let Some(context) = &context {
        let info = repl.load_context(context)?;
        if args.exec.is_none() {
            eprintln!("context: {} documents, {} bytes", info.documents, info.chars);
        }
    }

    if let Some(file) = &args.exec {
        let code = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let result = repl.execute(&code)?;
        if args.json {
            println!("{}", serde_json::to_string(&result)?);
            return Ok(ExitCode::SUCCESS);
        }
        show(&result);
        return Ok(if result.error.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS });
    }
    interactive(&mut repl)
}

fn show(r: &ReplResult) {
    print!("{}", r.stdout);
    if !r.stdout.is_empty() && !r.stdout.ends_with('\n') {
        println!();
    }
    if !r.stderr.is_empty() {
        eprint!("{}", r.stderr);
    }
    if let Some(v) = &r.value {
        println!("{v}");
    }
    if let Some(e) = &r.error {
        eprintln!("{e}");
    }
    if let Some(f) = &r.final_answer {
        println!("FINAL: {f}");
    }
}

/// A line ending in `:` or `\`, or an open bracket, starts a block that a blank line ends.
fn interactive(repl: &mut Repl) -> Result<ExitCode> {
    let info = repl.info();
    eprintln!(
        "quarry repl — Python {} in a sandbox ({}). Ctrl-D exits.",
        info.python.split_whitespace().next().unwrap_or("?"),
        info.active.join(", ")
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        eprint!(">>> ");
        std::io::stderr().flush().ok();
        let Some(first) = lines.next().transpose()? else { break };
        let mut code = first.clone();
        let opens = |s: &str| s.matches(['(', '[', '{']).count() > s.matches([')', ']', '}']).count();
        if first.trim_end().ends_with(':') || first.trim_end().ends_with('\\') || opens(&first) {
            loop {
                eprint!("... ");
                std::io::stderr().flush().ok();
                match lines.next().transpose()? {
                    Some(l) if !l.trim().is_empty() => {
                        code.push('\n');
                        code.push_str(&l);
                    }
                    _ => break,
                }
            }
        }
        if code.trim().is_empty() {
            continue;
        }
        show(&repl.execute(&code)?);
    }
    Ok(ExitCode::SUCCESS)
}
