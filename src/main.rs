//! The `petstore-ws` binary: parse the configuration, set up logging, serve.

use std::process::ExitCode;

use clap::Parser;
use petstore_ws::{config::Config, server, telemetry};

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
