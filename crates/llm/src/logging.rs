//! The log set-up both binaries install first thing (`quarry` and `quarry-desktop`), so they
//! filter alike: `QUARRY_LOG` takes a `tracing` filter (`QUARRY_LOG=debug`), warnings by default,
//! and llama.cpp's own chatter (forwarded under `llama-cpp-2`) only when it is an error. Logs go
//! to stderr; the CLI's answer owns stdout.

/// Installs the subscriber. Call once, from a binary's `main`.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QUARRY_LOG")
                .unwrap_or_else(|_| "warn,llama-cpp-2=error".into()),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}
