//! `quarry system`: what this machine and this build run models on — the CPU's instruction sets,
//! the llama.cpp kernels selected, the flags they were built with — without loading a model. The
//! same report is in `quarry serve`'s start-up line and its `GET /health`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use quarry_engine::system::SystemInfo;

#[derive(Args)]
pub struct SystemArgs {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: SystemArgs) -> Result<ExitCode> {
    let info = SystemInfo::probe()?;
    if args.json {
        println!("{}", serde_json::to_string(&info)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", info.line());
    println!("cpu: {} ({} physical cores, {} logical)", info.cpu.model, info.cpu.physical_cores, info.cpu.logical_cpus);
    println!("cpu features: {}", info.cpu.features.join(" "));
    println!(
        "llama.cpp build: {} (extra C++ flags: {})",
        info.build,
        if info.build_flags.is_empty() { "none" } else { info.build_flags }
    );
    if let Some(v) = &info.cpu_variant {
        println!("cpu kernels: {} ({}, score {})", v.name, v.path.display(), v.score);
    }
    for b in &info.backends {
        let on: Vec<String> = b
            .features
            .iter()
            .filter(|(_, v)| v.as_str() != "0")
            .map(|(k, v)| if v == "1" { k.clone() } else { format!("{k}={v}") })
            .collect();
        println!("backend {}: {} [{}]", b.name, on.join(" "), b.devices.join("; "));
    }
    println!("llama.cpp: {}", info.llama);
    if info.uses_amx() {
        println!("warning: this build uses llama.cpp's AMX kernels, which crash (ggml-org/llama.cpp#20824)");
    }
    Ok(ExitCode::SUCCESS)
}
