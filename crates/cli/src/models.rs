//! `quarry models ...`: list, fetch, path, verify, import.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use quarry_models::import::{import_file, verify_file};
use quarry_models::{human_bytes, CancelToken, Fetcher, ModelStore, Status};

use crate::progress::Bars;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Show known models and whether each is installed.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Download models (resumable), verifying size and sha256 before use.
    Fetch {
        /// Catalog ids; `quarry models list` shows them.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Print where a model's file is; exit 1 if it is not installed.
    Path { id: String },
    /// Check a GGUF file (a path or an installed model's id) against the catalog.
    Verify {
        target: String,
        #[arg(long)]
        json: bool,
    },
    /// Register a GGUF file you already have; it stays where it is.
    Import { path: PathBuf },
}

pub async fn run(cmd: ModelsCommand) -> Result<ExitCode> {
    let store = ModelStore::from_env();
    match cmd {
        ModelsCommand::List { json } => list(&store, json),
        ModelsCommand::Fetch { ids } => fetch(&store, &ids).await,
        ModelsCommand::Path { id } => {
            let catalog = store.catalog()?;
            let entry = catalog.get(&id)?;
            match store.status(entry) {
                Status::Installed { path } => {
                    println!("{}", path.display());
                    Ok(ExitCode::SUCCESS)
                }
                Status::Damaged { path, len } => {
                    eprintln!("{} is incomplete ({len} bytes); run `quarry models fetch {id}`", path.display());
                    Ok(ExitCode::FAILURE)
                }
                Status::Missing => {
                    eprintln!("{id} is not installed; run `quarry models fetch {id}`");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        ModelsCommand::Verify { target, json } => verify(&store, &target, json).await,
        ModelsCommand::Import { path } => {
            let bars = Bars::new();
            let cancel = cancel_on_ctrl_c();
            let entry = tokio::task::block_in_place(|| import_file(&store, &path, &bars, &cancel))?;
            println!("imported {} as {} ({})", path.display(), entry.id, human_bytes(entry.size.unwrap_or(0)));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(store: &ModelStore, json: bool) -> Result<ExitCode> {
    let catalog = store.catalog()?;
    if json {
        let rows: Vec<_> = catalog
            .models()
            .iter()
            .map(|m| {
                let (installed, path) = match store.status(m) {
                    Status::Installed { path } => (true, Some(path)),
                    _ => (false, None),
                };
                serde_json::json!({
                    "id": m.id, "name": m.name, "family": m.family, "params": m.params,
                    "quantization": m.quantization, "file": m.file, "size": m.size, "sha256": m.sha256,
                    "license": m.license, "role": m.role, "default_for": m.default_for,
                    "sources": m.sources, "installed": installed, "path": path,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<38} {:>6} {:<7} {:>10} {:<5} STATUS", "ID", "PARAMS", "QUANT", "SIZE", "ROLE");
    for m in catalog.models() {
        let status = match store.status(m) {
            Status::Installed { .. } => "installed",
            Status::Damaged { .. } => "incomplete",
            Status::Missing => "-",
        };
        let size = m.size.map(human_bytes).unwrap_or_else(|| "?".into());
        let default = if m.default_for.is_empty() {
            String::new()
        } else {
            format!(" (default {})", m.default_for.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("+"))
        };
        println!("{:<38} {:>6} {:<7} {:>10} {:<5} {status}{default}", m.id, m.params, m.quantization, size, m.role);
    }
    println!("\nmodels directory: {}", store.dir().display());
    Ok(ExitCode::SUCCESS)
}

async fn fetch(store: &ModelStore, ids: &[String]) -> Result<ExitCode> {
    let catalog = store.catalog()?;
    // Every id is checked before anything downloads, so a typo in the second id does not
    // surface after a gigabyte of the first.
    let entries = ids.iter().map(|id| catalog.get(id)).collect::<Result<Vec<_>, _>>()?;
    let fetcher = Fetcher::new(store.clone())?;
    let cancel = fetcher.cancel_token();
    tokio::spawn({
        let cancel = cancel.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        }
    });
    let bars = Bars::new();
    for entry in entries {
        let path = fetcher.fetch(entry, &bars).await?;
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn verify(store: &ModelStore, target: &str, json: bool) -> Result<ExitCode> {
    let path = match store.catalog()?.get(target) {
        Ok(_) => store.resolve(target)?,
        Err(_) => PathBuf::from(target),
    };
    let bars = Bars::new();
    let cancel = cancel_on_ctrl_c();
    let v = tokio::task::block_in_place(|| verify_file(store, &path, &bars, &cancel))?;
    let ok = v.conflicts_with.is_none();
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{}: GGUF v{}, {}, {} bytes, sha256 {}",
            v.path.display(),
            v.gguf_version,
            v.architecture.as_deref().unwrap_or("unknown architecture"),
            v.size,
            v.sha256
        );
        match (&v.matches, &v.conflicts_with) {
            (Some(id), _) => println!("matches catalog model {id}"),
            (None, Some(id)) => println!(
                "does NOT match catalog model {id}, whose file has this name: the file is corrupt or a different model"
            ),
            (None, None) => println!("not a catalog model (its header is valid; `quarry models import` registers it)"),
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// A token cancelled by Ctrl-C, for blocking work that polls it.
pub fn cancel_on_ctrl_c() -> CancelToken {
    let cancel = CancelToken::default();
    let c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            c.cancel();
        }
    });
    cancel
}
