//! `clps-hub`: serve the federation, or manage its certificates.
//!
//! Messages for the operator are in French; logs (tracing) are in English.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use clps_hub::{Config, Hub, Identity, pki};
use clps_model::CentreId;

#[derive(Parser)]
#[command(name = "clps-hub", about = "Hub de la fédération des CLPS")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Démarre le hub (gRPC + TLS mutuel, métriques Prometheus).
    Serve {
        /// Fichier de configuration TOML (voir deploy/hub.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Autorité de certification de la fédération.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Crée l'autorité (ca.crt, ca.key) et le certificat du hub.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Noms DNS ou adresses IP supplémentaires du hub.
        #[arg(long = "hub-name")]
        hub_names: Vec<String>,
    },
    /// Émet un certificat client pour un centre ou un comité.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        #[arg(
            long,
            conflicts_with = "committee",
            required_unless_present = "committee"
        )]
        centre: Option<String>,
        #[arg(long)]
        committee: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve { config } => {
            let config = match config {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            let hub = Hub::bind(&config)
                .await
                .context("démarrage du hub impossible")?;
            // Scripts wait for this line to learn the port (listen = port 0).
            println!("hub à l'écoute sur {}", hub.local_addr());
            if let Some(addr) = hub.metrics_addr() {
                println!("métriques sur http://{addr}/metrics");
            }
            tokio::signal::ctrl_c().await?;
            println!("arrêt du hub…");
            hub.shutdown();
            hub.join().await?;
        }
        Command::Pki { command } => match command {
            PkiCommand::Init { dir, hub_names } => {
                let hub = pki::init(&dir, &hub_names)?;
                println!("autorité créée dans {}", dir.display());
                println!("certificat du hub : {}", hub.cert_path.display());
            }
            PkiCommand::Issue {
                dir,
                centre,
                committee,
            } => {
                let identity = match (centre, committee) {
                    (Some(centre), _) => Identity::Centre(CentreId::new(&centre)?),
                    (None, Some(name)) => {
                        clps_hub::identity::valid_committee_name(&name)?;
                        Identity::Committee(name)
                    }
                    (None, None) => anyhow::bail!("indiquez --centre ou --committee"),
                };
                let pair = pki::issue(&dir, &identity)?;
                println!(
                    "certificat émis pour {identity} : {} (clé : {})",
                    pair.cert_path.display(),
                    pair.key_path.display()
                );
            }
        },
    }
    Ok(())
}
