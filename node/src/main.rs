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
    // Output piped into a reader that stops early (`| head`): end quietly
    // with the exit code of a SIGPIPE, as other Unix tools do, instead of
    // the panic `println!` raises on a closed pipe.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    let cli = clps_node::cli::Cli::parse();
    match clps_node::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("erreur : {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
