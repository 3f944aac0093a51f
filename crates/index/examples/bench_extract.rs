//! `quarry bench extract` for this crate: pages/s and MB/s by format over a corpus folder,
//! `pdftotext` on the same PDFs in the same run, peak RSS (the CLI wires the same call).
//!
//! ```sh
//! cargo build --release -p quarry-index --bins --examples
//! target/release/examples/bench_extract ../shared/corpora/documents [--json] [--workers=N]
//! ```

use std::path::{Path, PathBuf};

use quarry_index::extract::{bench, ExtractorConfig, WorkerCommand};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let corpus = PathBuf::from(args.iter().find(|a| !a.starts_with("--")).expect("a corpus folder"));
    let corpus = corpus.canonicalize()?;
    let exe = std::env::current_exe()?;
    let worker = exe.parent().and_then(Path::parent).map(|d| d.join("quarry-extract-worker")).expect("target dir");
    let config = ExtractorConfig { worker: WorkerCommand::bare(worker), ..Default::default() };
    let workers = args.iter().find_map(|a| a.strip_prefix("--workers=")).map_or(Ok(0), str::parse)?;
    let report = bench::run(&corpus, config, workers, &mut |i, n, f| {
        eprint!("\r[{}/{}] {}\x1b[K", i + 1, n, f.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
    })?;
    eprintln!();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
