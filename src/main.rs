//! The `petstore-ws` binary: parse the configuration, set up logging, serve.

use std::process::ExitCode;

use clap::Parser;
use petstore_ws::{config::Config, server, telemetry};

/// mimalloc rather than the system allocator: the hot paths allocate many small, short-lived
/// blocks (a REST read ~25 when this was measured, ~13 now; many freed on another worker thread
/// than the one that made them), and glibc's malloc/free spent ~18% of the server's user-space
/// instructions on them
/// (`benches/README.md`, "The allocator, and where a request's instructions go"). The benchmarks
/// declare the same allocator, so their figures are this binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(error) = telemetry::init(&config) {
        eprintln!("petstore-ws: {error}");
        return ExitCode::FAILURE;
    }
    match server::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "petstore-ws cannot start");
            eprintln!("petstore-ws: {error}");
            ExitCode::FAILURE
        }
    }
}
