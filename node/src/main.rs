//! `clps-node`: parse the command line, run it, print one French sentence on
//! error and exit non-zero.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CLPS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = clps_node::cli::Cli::parse();
    match clps_node::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("erreur : {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
