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
    /// Statistiques fusionnées du réseau, pour les comités inter-CLPS.
    Stats {
        /// Fichier de configuration du hub (pour trouver sa base de données).
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        year: i32,
        /// sector, theme, profession ou contact-mode.
        #[arg(long)]
        by: clps_model::stats::Dimension,
        /// Un seul centre.
        #[arg(long, conflicts_with = "per_centre")]
        centre: Option<String>,
        /// Une colonne par centre (CSV).
        #[arg(long)]
        per_centre: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Seuil de la règle des petites cellules (0 pour la désactiver).
        #[arg(long, default_value_t = 5)]
        small_cells: u64,
    },
    /// Reconstruit une base du hub perdue à partir des nœuds (hub arrêté).
    /// Chaque modification est revalidée au nom de son propre centre.
    Recover {
        /// Fichier de configuration du hub (base à reconstruire, espaces).
        #[arg(long)]
        config: PathBuf,
        /// Répertoire de données d'un nœud, ou fichier de `clps-node backup`
        /// (à répéter : un par nœud disponible).
        #[arg(long = "from-node", required = true)]
        from_node: Vec<PathBuf>,
    },
    /// Autorité de certification de la fédération.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Enquêtes communes : résultats fusionnés lus dans la base du hub.
    Survey {
        #[command(subcommand)]
        command: clps_hub::survey_cli::SurveyCommand,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
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
    /// Révoque un certificat client : réécrit ca.crl (à nommer dans tls.crl
    /// de la configuration du hub, puis redémarrer le hub).
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        /// Le certificat à révoquer (PEM).
        #[arg(long)]
        cert: PathBuf,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse().command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One line for the operator: the context chain, no backtrace
            // (even when RUST_BACKTRACE is set in the environment).
            eprintln!("erreur : {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
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
            if let Some(addr) = hub.dashboard_addr() {
                println!("tableau de bord des comités sur https://{addr}/");
            }
            tokio::signal::ctrl_c().await?;
            println!("arrêt du hub…");
            hub.shutdown();
            hub.join().await?;
        }
        Command::Stats {
            config,
            year,
            by,
            centre,
            per_centre,
            format,
            small_cells,
        } => {
            let config = Config::load(&config)?;
            let database = config
                .database
                .as_deref()
                .context("la configuration ne nomme pas de base de données")?;
            if let Some(c) = &centre {
                CentreId::new(c)?;
            }
            let store = clps_hub::store::Store::open(Some(database))?;
            let report = clps_hub::stats_report::report(&store, year, by).await?;
            let threshold = (small_cells > 0).then_some(small_cells);
            match format {
                Format::Table => print!(
                    "{}",
                    clps_hub::stats_report::to_table(&report, centre.as_deref(), threshold)
                ),
                Format::Csv => print!(
                    "{}",
                    clps_hub::stats_report::to_csv(
                        &report,
                        centre.as_deref(),
                        per_centre,
                        threshold
                    )
                ),
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
        }
        Command::Survey { command } => clps_hub::survey_cli::run(command).await?,
        Command::Recover { config, from_node } => {
            let config = Config::load(&config)?;
            let report = clps_hub::recover::recover(&config, &from_node)
                .await
                .context("reconstruction impossible")?;
            println!(
                "base du hub reconstruite à partir de {} nœud(s) : {} document(s), {} modification(s) validée(s)",
                report.sources, report.docs, report.changes
            );
            for (doc, reason) in &report.refused {
                println!("  modification écartée dans {doc} : {reason}");
            }
            for (doc, reason) in &report.skipped {
                println!("  document écarté {doc} : {reason}");
            }
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
            PkiCommand::Revoke { dir, cert } => {
                let (crl, serial) = pki::revoke(&dir, &cert)?;
                println!(
                    "certificat {} (numéro de série {serial}) révoqué ; liste de révocation : {} (redémarrez le hub)",
                    cert.display(),
                    crl.display()
                );
            }
        },
    }
    Ok(())
}
