//! The `clps-node` command line: French for staff, one clear sentence on error.
//!
//! Every command opens the data directory's store, does its work through the
//! storage actor and exits. Nothing is written before the input is validated,
//! and every write is one transaction.

use clps_model::text::capitalise;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clps_model::CentreId;
use rand::RngCore;

use crate::records::{self, Accompaniment, Event, Kind, Loan, Organisation, Person, Request};
use crate::seed::{self, SeedOptions};
use crate::stats;
use crate::store::{OpenMode, Store, StoreError};
use clps_model::stats::Dimension;

#[derive(Debug, Parser)]
#[command(
    name = "clps-node",
    version,
    about = "Nœud d'un CLPS : les dossiers du centre (demandes, prêts, accompagnements, événements) et ses statistiques, hors ligne."
)]
pub struct Cli {
    /// Répertoire de données du nœud (créé par `init`).
    #[arg(long, global = true, env = "CLPS_NODE_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Initialise le répertoire de données pour un centre.
    Init {
        /// Identifiant du centre (par exemple charleroi-thuin).
        #[arg(long)]
        centre: String,
    },
    /// Organisations partenaires et membres.
    #[command(subcommand, visible_alias = "org")]
    Organisation(Crud<OrganisationFields>),
    /// Personnes de contact (données privées du centre).
    #[command(subcommand, visible_alias = "personne")]
    Person(Crud<PersonFields>),
    /// Demandes.
    #[command(subcommand, visible_alias = "demande")]
    Request(Crud<RequestFields>),
    /// Prêts (mises à disposition).
    #[command(subcommand, visible_alias = "pret")]
    Loan(Crud<LoanFields>),
    /// Accompagnements méthodologiques.
    #[command(subcommand, visible_alias = "accompagnement")]
    Accompaniment(Crud<AccompanimentFields>),
    /// Formations, ateliers, concertations.
    #[command(subcommand, visible_alias = "evenement")]
    Event(Crud<EventFields>),
    /// Tableau croisé des demandes d'une année (type de service × dimension).
    Stats {
        #[arg(long)]
        year: i32,
        /// sector, theme, profession ou contact-mode.
        #[arg(long, value_parser = parse_dimension)]
        by: Dimension,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Génère une année de données réalistes (personnes inventées).
    Seed {
        #[arg(long)]
        year: i32,
        /// Reproduit les chiffres publiés (charleroi-thuin, 2021).
        #[arg(long, conflicts_with = "scale")]
        calibration: bool,
        /// Taille relative au centre calibré (1.0 = même volume).
        #[arg(long)]
        scale: Option<f64>,
        /// Graine du tirage : même graine, mêmes données.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Catalogue partagé (centre de ressources, outilthèque).
    #[command(subcommand)]
    Catalogue(crate::catalogue_cli::CatalogueCommand),
    /// Enquêtes communes (questionnaire, population, réponses, résultats).
    #[command(subcommand, visible_alias = "enquete")]
    Survey(crate::survey_cli::SurveyCommand),
    /// Points d'appui : répertoire des services, sélections d'outils, rencontres, documents co-écrits.
    #[command(subcommand)]
    Appui(crate::appui_cli::AppuiCommand),
    /// Rejoint la fédération : copie les certificats du centre et note l'adresse du hub.
    Join {
        /// Adresse du hub (hôte:port).
        #[arg(long)]
        hub: String,
        /// Nom porté par le certificat du hub.
        #[arg(long, default_value = "localhost")]
        server_name: String,
        /// Certificat de l'autorité de la fédération (PEM).
        #[arg(long)]
        ca: PathBuf,
        /// Certificat du centre (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Clé privée du centre (PEM).
        #[arg(long)]
        key: PathBuf,
        /// Adresse de l'application web du personnel que `serve` ouvre
        /// (par défaut 127.0.0.1:8080, ou celle déjà choisie ; « aucune »
        /// pour ne pas en servir ; port 0 : un port libre).
        #[arg(long, value_name = "ADRESSE:PORT")]
        web: Option<String>,
    },
    /// Synchronise une fois avec le hub et s'arrête une fois à jour.
    Sync,
    /// Reste connecté au hub et synchronise en continu (reconnexion
    /// automatique) ; sert aussi l'application web du personnel quand
    /// node.toml a une section [web].
    Serve,
    /// Sert l'application web du personnel sans se connecter au hub (centre
    /// hors ligne).
    Web {
        /// Adresse d'écoute (par défaut celle de [web] dans node.toml, sinon 127.0.0.1:8080).
        #[arg(long, value_name = "ADRESSE:PORT")]
        listen: Option<String>,
    },
    /// Comptes du personnel pour l'application web.
    #[command(subcommand, visible_alias = "compte")]
    User(crate::user_cli::UserCommand),
    /// Publie les agrégats du centre (comptages seulement) dans son document de statistiques.
    Publish,
    /// Résumé du nœud : centre, nombre de dossiers.
    Status,
    /// Documents partagés détenus et leurs têtes (JSON, pour les scripts).
    Docs,
    /// Reconstruit un document refusé par le hub à partir de la copie du
    /// hub, en rejouant les modifications valides de ce centre (et dit ce qui
    /// est écarté).
    Recover {
        /// Le document bloqué, tel que `status` le nomme (ex. catalogue/047).
        doc: String,
    },
    /// Sauvegarde à chaud de la base du nœud (sauvegarde en ligne de SQLite).
    Backup {
        /// Fichier de sauvegarde à créer.
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// The five actions every record kind offers.
#[derive(Debug, Subcommand)]
pub enum Crud<F: Args> {
    /// Ajoute un dossier.
    Add(F),
    /// Liste les dossiers.
    List {
        /// Seulement cette année (demandes, prêts, accompagnements, événements).
        #[arg(long)]
        year: Option<i32>,
    },
    /// Affiche un dossier.
    Show { id: i64 },
    /// Modifie un dossier : seuls les champs donnés changent.
    Edit {
        id: i64,
        #[command(flatten)]
        fields: F,
    },
    /// Supprime un dossier.
    Delete { id: i64 },
}

#[derive(Debug, Clone, Args)]
pub struct OrganisationFields {
    #[arg(long)]
    name: Option<String>,
    #[arg(long = "type")]
    org_type: Option<String>,
    #[arg(long)]
    sector: Option<String>,
    #[arg(long)]
    commune: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PersonFields {
    #[arg(long)]
    first_name: Option<String>,
    #[arg(long)]
    last_name: Option<String>,
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    phone: Option<String>,
    #[arg(long = "org")]
    organisation: Option<i64>,
}

#[derive(Debug, Clone, Args)]
pub struct RequestFields {
    /// Date (AAAA-MM-JJ).
    #[arg(long)]
    date: Option<String>,
    /// Type de service (code).
    #[arg(long)]
    service: Option<String>,
    #[arg(long)]
    sector: Option<String>,
    #[arg(long)]
    profession: Option<String>,
    /// Mode de contact (code).
    #[arg(long)]
    contact: Option<String>,
    /// Thématique (répétable) ; remplace les thématiques à l'édition.
    #[arg(long = "theme")]
    themes: Vec<String>,
    #[arg(long = "org")]
    organisation: Option<i64>,
    #[arg(long)]
    person: Option<i64>,
    #[arg(long)]
    note: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct LoanFields {
    /// Référence de l'exemplaire prêté.
    #[arg(long)]
    item: Option<String>,
    #[arg(long)]
    doc_type: Option<String>,
    #[arg(long)]
    theme: Option<String>,
    #[arg(long = "org")]
    organisation: Option<i64>,
    #[arg(long)]
    out: Option<String>,
    #[arg(long)]
    due: Option<String>,
    #[arg(long)]
    returned: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct AccompanimentFields {
    #[arg(long)]
    title: Option<String>,
    /// general, assuetudes, evras ou covid.
    #[arg(long)]
    scheme: Option<String>,
    #[arg(long)]
    commune: Option<String>,
    #[arg(long)]
    start: Option<String>,
    #[arg(long = "theme")]
    themes: Vec<String>,
    #[arg(long = "axis")]
    axes: Vec<String>,
    #[arg(long = "org")]
    organisation: Option<i64>,
    #[arg(long)]
    note: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct EventFields {
    /// formation, atelier ou concertation.
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    start: Option<String>,
    #[arg(long)]
    end: Option<String>,
    /// Centre ou partenaire organisateur (répétable).
    #[arg(long = "organiser")]
    organisers: Vec<String>,
    /// Participants par profession : profession=nombre (répétable).
    #[arg(long = "participants", value_parser = parse_participants)]
    participants: Vec<(String, i64)>,
}

fn parse_dimension(s: &str) -> Result<Dimension, String> {
    s.parse()
        .map_err(|e: clps_model::stats::UnknownDimension| e.to_string())
}

fn parse_participants(s: &str) -> Result<(String, i64), String> {
    let (profession, n) = s
        .split_once('=')
        .ok_or_else(|| format!("« {s} » : attendu profession=nombre"))?;
    let n: i64 = n
        .trim()
        .parse()
        .map_err(|_| format!("« {n} » n'est pas un nombre"))?;
    Ok((profession.trim().to_owned(), n))
}

fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

fn set_list(target: &mut Vec<String>, values: Vec<String>) {
    if !values.is_empty() {
        *target = values;
    }
}

/// A record kind's fields as the CLI gives them: applied onto a record.
pub trait Fields: Args + Clone + Send + 'static {
    type Record: Default + Clone + Send + serde::Serialize + 'static;
    const KIND: Kind;
    fn apply(self, record: &mut Self::Record);
    fn save(tx: &rusqlite::Transaction<'_>, r: &Self::Record) -> Result<i64, records::OpError>;
    fn load(conn: &rusqlite::Connection, id: i64) -> Result<Self::Record, records::OpError>;
    fn set_id(record: &mut Self::Record, id: i64);
    /// One line for `list`.
    fn summary(r: &Self::Record) -> String;
}

impl Fields for OrganisationFields {
    type Record = Organisation;
    const KIND: Kind = Kind::Organisation;
    fn apply(self, r: &mut Organisation) {
        set(&mut r.name, self.name);
        set(&mut r.org_type, self.org_type);
        set(&mut r.sector, self.sector);
        set(&mut r.commune, self.commune);
    }
    fn save(tx: &rusqlite::Transaction<'_>, r: &Organisation) -> Result<i64, records::OpError> {
        records::save_organisation(tx, r)
    }
    fn load(c: &rusqlite::Connection, id: i64) -> Result<Organisation, records::OpError> {
        records::load_organisation(c, id)
    }
    fn set_id(r: &mut Organisation, id: i64) {
        r.id = id;
    }
    fn summary(r: &Organisation) -> String {
        format!("{} — {} ({})", r.name, r.commune, r.sector)
    }
}

impl Fields for PersonFields {
    type Record = Person;
    const KIND: Kind = Kind::Person;
    fn apply(self, r: &mut Person) {
        set(&mut r.first_name, self.first_name);
        set(&mut r.last_name, self.last_name);
        if self.email.is_some() {
            r.email = self.email;
        }
        if self.phone.is_some() {
            r.phone = self.phone;
        }
        if self.organisation.is_some() {
            r.organisation_id = self.organisation;
        }
    }
    fn save(tx: &rusqlite::Transaction<'_>, r: &Person) -> Result<i64, records::OpError> {
        records::save_person(tx, r)
    }
    fn load(c: &rusqlite::Connection, id: i64) -> Result<Person, records::OpError> {
        records::load_person(c, id)
    }
    fn set_id(r: &mut Person, id: i64) {
        r.id = id;
    }
    fn summary(r: &Person) -> String {
        format!("{} {}", r.first_name, r.last_name)
    }
}

impl Fields for RequestFields {
    type Record = Request;
    const KIND: Kind = Kind::Request;
    fn apply(self, r: &mut Request) {
        set(&mut r.date, self.date);
        set(&mut r.service_type, self.service);
        set(&mut r.sector, self.sector);
        set(&mut r.profession, self.profession);
        set(&mut r.contact_mode, self.contact);
        set_list(&mut r.themes, self.themes);
        if self.organisation.is_some() {
            r.organisation_id = self.organisation;
        }
        if self.person.is_some() {
            r.person_id = self.person;
        }
        set(&mut r.note, self.note);
    }
    fn save(tx: &rusqlite::Transaction<'_>, r: &Request) -> Result<i64, records::OpError> {
        records::save_request(tx, r)
    }
    fn load(c: &rusqlite::Connection, id: i64) -> Result<Request, records::OpError> {
        records::load_request(c, id)
    }
    fn set_id(r: &mut Request, id: i64) {
        r.id = id;
    }
    fn summary(r: &Request) -> String {
        format!(
            "{} — {} — {} — {}",
            r.date,
            r.service_type,
            r.sector,
            r.themes.join(", ")
        )
    }
}

impl Fields for LoanFields {
    type Record = Loan;
    const KIND: Kind = Kind::Loan;
    fn apply(self, r: &mut Loan) {
        set(&mut r.item_ref, self.item);
        set(&mut r.document_type, self.doc_type);
        if self.theme.is_some() {
            r.theme = self.theme;
        }
        if self.organisation.is_some() {
            r.organisation_id = self.organisation;
        }
        set(&mut r.out_date, self.out);
        set(&mut r.due_date, self.due);
        if self.returned.is_some() {
            r.returned_date = self.returned;
        }
    }
    fn save(tx: &rusqlite::Transaction<'_>, r: &Loan) -> Result<i64, records::OpError> {
        records::save_loan(tx, r)
    }
    fn load(c: &rusqlite::Connection, id: i64) -> Result<Loan, records::OpError> {
        records::load_loan(c, id)
    }
    fn set_id(r: &mut Loan, id: i64) {
        r.id = id;
    }
    fn summary(r: &Loan) -> String {
        format!(
            "{} — {} — sorti le {}{}",
            r.item_ref,
            r.document_type,
            r.out_date,
            r.returned_date
                .as_ref()
                .map(|d| format!(", rendu le {d}"))
                .unwrap_or_else(|| format!(", retour prévu le {}", r.due_date))
        )
    }
}

impl Fields for AccompanimentFields {
    type Record = Accompaniment;
    const KIND: Kind = Kind::Accompaniment;
    fn apply(self, r: &mut Accompaniment) {
        set(&mut r.title, self.title);
        set(&mut r.scheme, self.scheme);
        set(&mut r.commune, self.commune);
        set(&mut r.start_date, self.start);
        set_list(&mut r.themes, self.themes);
        set_list(&mut r.axes, self.axes);
        if self.organisation.is_some() {
            r.organisation_id = self.organisation;
        }
        set(&mut r.note, self.note);
    }
    fn save(tx: &rusqlite::Transaction<'_>, r: &Accompaniment) -> Result<i64, records::OpError> {
        records::save_accompaniment(tx, r)
    }
    fn load(c: &rusqlite::Connection, id: i64) -> Result<Accompaniment, records::OpError> {
        records::load_accompaniment(c, id)
    }
    fn set_id(r: &mut Accompaniment, id: i64) {
        r.id = id;
    }
    fn summary(r: &Accompaniment) -> String {
        format!("{} — {} — {}", r.start_date, r.scheme, r.title)
    }
}

impl Fields for EventFields {
    type Record = Event;
    const KIND: Kind = Kind::Event;
    fn apply(self, r: &mut Event) {
        set(&mut r.kind, self.kind);
        set(&mut r.title, self.title);
        if let Some(start) = self.start {
            if r.end_date.is_empty() {
                r.end_date = start.clone();
            }
            r.start_date = start;
        }
        set(&mut r.end_date, self.end);
        set_list(&mut r.organisers, self.organisers);
        if !self.participants.is_empty() {
            r.participants = self.participants;
        }
    }
    fn save(tx: &rusqlite::Transaction<'_>, r: &Event) -> Result<i64, records::OpError> {
        records::save_event(tx, r)
    }
    fn load(c: &rusqlite::Connection, id: i64) -> Result<Event, records::OpError> {
        records::load_event(c, id)
    }
    fn set_id(r: &mut Event, id: i64) {
        r.id = id;
    }
    fn summary(r: &Event) -> String {
        let n: i64 = r.participants.iter().map(|(_, n)| n).sum();
        format!(
            "{} — {} — {} ({} participants ; organisé par {})",
            r.start_date,
            r.kind,
            r.title,
            n,
            r.organisers.join(", ")
        )
    }
}

/// Errors the CLI reports: one French sentence each.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("indiquez le répertoire de données avec --data DIR (ou la variable CLPS_NODE_DATA)")]
    NoDataDir,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Centre(#[from] clps_model::UnknownCentre),
    #[error(transparent)]
    Seed(#[from] seed::SeedError),
    #[error(
        "le centre a déjà des demandes en {0} : le tirage ne s'ajoute pas à des données existantes"
    )]
    AlreadySeeded(i32),
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Federation(#[from] crate::federation::FederationError),
    #[error(transparent)]
    Recover(#[from] crate::recover::RecoverError),
    #[error("{}", crate::web::fr::account_error(.0))]
    Account(#[from] crate::app::accounts::AccountError),
    #[error("{}", crate::web::fr::catalogue_error(.0))]
    Catalogue(#[from] crate::app::catalogue::CatalogueError),
    #[error(transparent)]
    Serve(#[from] crate::server::ServeError),
    #[error("synchronisation incomplète : {} par le hub ; les modifications de ce centre y restent en attente, rien n'est perdu", blocked_phrase(*.0))]
    Blocked(usize),
}

fn blocked_phrase(n: usize) -> String {
    if n == 1 {
        "1 document refusé".to_owned()
    } else {
        format!("{n} documents refusés")
    }
}

/// What a per-document refusal means for staff.
fn refusal_sentence(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::PermissionDenied => {
            "le hub refuse une modification de ce document ou l'accès à son espace"
        }
        tonic::Code::ResourceExhausted => "le document dépasse la taille que le hub accepte",
        tonic::Code::InvalidArgument => "le hub n'a pas pu lire ce que ce nœud a envoyé",
        tonic::Code::NotFound => "le hub ne connaît pas ce document",
        tonic::Code::Unavailable => "le hub n'a pas pu enregistrer ce document pour l'instant",
        _ => "le hub n'a pas accepté ce document",
    }
}

/// Runs one command; the caller prints the error and sets the exit code.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let data = cli.data.ok_or(CliError::NoDataDir)?;
    match cli.command {
        Command::Init { centre } => {
            let centre = CentreId::new(&centre)?;
            let mut instance = [0u8; 8];
            rand::rng().fill_bytes(&mut instance);
            let store = Store::open(&data, OpenMode::Create)?;
            let c = centre.clone();
            let id = store
                .call(move |conn| crate::centre::init(conn, &c, instance))
                .await?;
            println!(
                "Nœud initialisé pour {} ({}) dans {} — listes de codes version {}",
                centre.centre().name,
                centre,
                data.display(),
                id.vocab_version
            );
            Ok(())
        }
        Command::Organisation(action) => crud::<OrganisationFields>(&data, action).await,
        Command::Person(action) => crud::<PersonFields>(&data, action).await,
        Command::Request(action) => crud::<RequestFields>(&data, action).await,
        Command::Loan(action) => crud::<LoanFields>(&data, action).await,
        Command::Accompaniment(action) => crud::<AccompanimentFields>(&data, action).await,
        Command::Event(action) => crud::<EventFields>(&data, action).await,
        Command::Stats { year, by, format } => {
            let store = open_existing(&data).await?;
            let table = store
                .call(move |c| Ok(stats::cross_table(c, year, by)?))
                .await?;
            match format {
                Format::Table => print!("{}", table.to_table()),
                Format::Csv => print!("{}", table.to_csv()),
                Format::Json => println!("{}", table.to_json()),
            }
            Ok(())
        }
        Command::Seed {
            year,
            calibration,
            scale,
            seed,
        } => run_seed(&data, year, calibration, scale.unwrap_or(1.0), seed).await,
        Command::Join {
            hub,
            server_name,
            ca,
            cert,
            key,
            web,
        } => {
            let store = open_existing(&data).await?;
            let identity = store.call(|c| crate::centre::require_identity(c)).await?;
            let web = match web.as_deref() {
                Some("aucune" | "none") => crate::federation::WebChoice::Off,
                Some(listen) => {
                    let config = crate::federation::WebConfig {
                        listen: listen.to_owned(),
                        ..crate::federation::WebConfig::default()
                    };
                    config.resolve(&data)?;
                    crate::federation::WebChoice::Listen(listen.to_owned())
                }
                None => crate::federation::WebChoice::Keep,
            };
            crate::federation::join(&data, &hub, &server_name, &ca, &cert, &key, web)?;
            println!(
                "{} ({}) rejoint la fédération via le hub {hub}",
                identity.centre.centre().name,
                identity.centre
            );
            Ok(())
        }
        Command::Sync => {
            let store = open_existing(&data).await?;
            let config = crate::federation::NodeConfig::load(&data)?.link_config(&data)?;
            store.call(crate::publish::publish).await?;
            let docs = crate::federation::NodeDocStore { store };
            let report = crate::link::sync_once(&config, &docs)
                .await
                .map_err(|e| crate::federation::FederationError::Link(error_chain(&e)))?;
            println!(
                "Synchronisé avec le hub en {:.2} s : {} modification(s) envoyée(s), {} reçue(s) ({} document(s) reçus, dont {} instantané(s)) ; {} octets envoyés, {} reçus",
                report.elapsed.as_secs_f64(),
                report.changes_up,
                report.changes_down,
                report.docs_down,
                report.snapshots_down,
                report.wire_bytes_up,
                report.wire_bytes_down
            );
            for failure in &report.failures {
                println!(
                    "  {} : {} (raison donnée par le hub : {})",
                    failure.doc_id,
                    refusal_sentence(failure.code),
                    failure.message
                );
            }
            match report.failures.len() {
                0 => Ok(()),
                n => Err(CliError::Blocked(n)),
            }
        }
        Command::Serve => {
            let node = crate::app::Node::open(&data).await?;
            // One serving process per data directory (the CLI's own commands
            // may run beside it). The lock goes with the process.
            let _serving = serve_lock(&data)?;
            let config = crate::federation::NodeConfig::load(&data)?;
            let link = config.link_config(&data)?;
            let web = config.web.as_ref().map(|w| w.resolve(&data)).transpose()?;
            let hub = link.hub.clone();
            let server = crate::server::NodeServer::bind(
                node,
                crate::server::ServeOptions {
                    link: Some(link),
                    web,
                    publish: true,
                },
            )
            .await?;
            match server.web_addr() {
                Some(addr) => eprintln!(
                    "Nœud connecté au hub {hub} ; application web sur {} — Ctrl-C pour arrêter",
                    web_url(addr, config.web.as_ref())
                ),
                None => eprintln!("Nœud connecté au hub {hub} — Ctrl-C pour arrêter"),
            }
            run_until_ctrl_c(server).await
        }
        Command::Web { listen } => {
            let node = crate::app::Node::open(&data).await?;
            let _serving = serve_lock(&data)?;
            let config = match crate::federation::NodeConfig::load(&data) {
                Ok(config) => config,
                Err(crate::federation::FederationError::NotJoined(_)) => {
                    crate::federation::NodeConfig::default()
                }
                Err(e) => return Err(e.into()),
            };
            let mut web = config.web.clone().unwrap_or_default();
            if let Some(listen) = listen {
                web.listen = listen;
            }
            let resolved = web.resolve(&data)?;
            let server = crate::server::NodeServer::bind(
                node,
                crate::server::ServeOptions {
                    link: None,
                    web: Some(resolved),
                    publish: false,
                },
            )
            .await?;
            if let Some(addr) = server.web_addr() {
                eprintln!(
                    "Application web sur {} (sans liaison avec le hub) — Ctrl-C pour arrêter",
                    web_url(addr, Some(&web))
                );
            }
            run_until_ctrl_c(server).await
        }
        Command::User(command) => crate::user_cli::run(&data, command).await,
        Command::Publish => {
            let store = open_existing(&data).await?;
            let n = store.call(crate::publish::publish).await?;
            println!("Statistiques publiées : {n} cellule(s) mise(s) à jour");
            Ok(())
        }
        Command::Catalogue(command) => {
            let node = crate::app::Node::open(&data).await?;
            crate::catalogue_cli::run(&node, command).await
        }
        Command::Survey(command) => {
            let store = open_existing(&data).await?;
            crate::survey_cli::run(&store, command).await
        }
        Command::Appui(command) => {
            let store = open_existing(&data).await?;
            crate::appui_cli::run(&store, command).await
        }
        Command::Recover { doc } => {
            let doc_id = clps_model::docs::DocId::parse(&doc).map_err(|_| {
                CliError::Usage(format!(
                    "« {doc} » n'est pas un nom de document (ex. catalogue/047)"
                ))
            })?;
            let store = open_existing(&data).await?;
            let config = crate::federation::NodeConfig::load(&data)?.link_config(&data)?;
            let report = crate::recover::recover(&store, &config, &doc_id).await?;
            let count = |n: usize, one: &str, many: &str| {
                if n == 1 {
                    format!("1 {one}")
                } else {
                    format!("{n} {many}")
                }
            };
            println!(
                "Document {doc_id} reconstruit depuis la copie du hub : {}, {}, {} à envoyer",
                count(
                    report.kept,
                    "modification de ce centre gardée telle quelle",
                    "modifications de ce centre gardées telles quelles"
                ),
                count(report.reapplied.len(), "champ repris", "champs repris"),
                count(report.pending, "modification", "modifications")
            );
            for field in &report.reapplied {
                println!("  repris : {field}");
            }
            for (hash, why) in &report.dropped {
                let short: String = hash.to_string().chars().take(12).collect();
                println!("  modification {short} écartée : {why}");
            }
            for field in &report.fields_dropped {
                println!("  champ écarté : {field}");
            }
            println!("Lancez « clps-node sync » pour envoyer le document reconstruit.");
            Ok(())
        }
        Command::Backup { to } => {
            let store = open_existing(&data).await?;
            let target = to.clone();
            let bytes = store
                .call(move |c| crate::store::backup(c, &target))
                .await?;
            println!(
                "Sauvegarde écrite dans {} ({bytes} octets, intégrité vérifiée) ; pour restaurer, arrêtez le nœud et copiez ce fichier en {}/node.sqlite",
                to.display(),
                data.display()
            );
            Ok(())
        }
        Command::Docs => {
            let store = open_existing(&data).await?;
            let (docs, pending, records, counts) = store
                .call(|c| {
                    Ok((
                        crate::shared::list(c)?,
                        crate::shared::pending_count(c)?,
                        crate::catalogue::count(c)?,
                        records::counts(c)?,
                    ))
                })
                .await?;
            let value = serde_json::json!({
                "docs": docs.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                "pending_changes": pending,
                "catalogue_records": records,
                "records": counts
                    .into_iter()
                    .map(|(kind, n)| (kind.table().to_owned(), n))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            });
            println!("{value}");
            Ok(())
        }
        Command::Status => {
            let store = open_existing(&data).await?;
            let (identity, counts) = store
                .call(|c| {
                    let id = crate::centre::require_identity(c)?;
                    Ok((id, records::counts(c)?))
                })
                .await?;
            println!(
                "Centre : {} ({})",
                identity.centre.centre().name,
                identity.centre
            );
            for (kind, n) in counts {
                println!("  {kind} : {n}");
            }
            let (n_docs, pending, records, last) = store
                .call(|c| {
                    Ok((
                        crate::shared::list(c)?.len(),
                        crate::shared::pending_count(c)?,
                        crate::catalogue::count(c)?,
                        crate::federation::last_sync(c)?,
                    ))
                })
                .await?;
            println!("  documents partagés : {n_docs} ({records} notices au catalogue)");
            println!("  modifications en attente d'envoi : {pending}");
            let blocked = store.call(|c| crate::federation::blocked_docs(c)).await?;
            if !blocked.is_empty() {
                println!(
                    "  documents bloqués (refusés par le hub à la dernière synchronisation) :"
                );
                for b in &blocked {
                    println!(
                        "    {} depuis le {} : {}",
                        b.doc_id,
                        format_time(b.since),
                        b.reason
                    );
                }
            }
            match last {
                Some((at, up, down)) => println!(
                    "  dernière synchronisation : {} ({up} envoyée(s), {down} reçue(s))",
                    format_time(at)
                ),
                None => println!("  dernière synchronisation : jamais"),
            }
            if let Ok(config) = crate::federation::NodeConfig::load(&data) {
                let link = config.link_config(&data)?;
                let docs = crate::federation::NodeDocStore { store };
                match crate::link::hub_status(&link, &docs).await {
                    Ok(status) => {
                        println!(
                            "  hub {} : connecté en tant que {}",
                            link.hub, status.identity
                        );
                        for space in status.spaces {
                            println!(
                                "    {:<24} {} — {}",
                                space.space.to_string(),
                                if space.can_write {
                                    "écriture"
                                } else {
                                    "lecture"
                                },
                                if space.heads_match {
                                    "à jour"
                                } else {
                                    "différent du hub"
                                }
                            );
                        }
                    }
                    Err(e) => println!("  hub {} injoignable : {}", link.hub, error_chain(&e)),
                }
            }
            Ok(())
        }
    }
}

/// The address staff open in their browser.
fn web_url(addr: std::net::SocketAddr, web: Option<&crate::federation::WebConfig>) -> String {
    let scheme = match web {
        Some(w) if w.cert.is_some() => "https",
        _ => "http",
    };
    format!("{scheme}://{addr}/")
}

/// Serves until Ctrl-C, then stops every part cleanly.
async fn run_until_ctrl_c(server: crate::server::NodeServer) -> Result<(), CliError> {
    let stop = server.stopper();
    let signal = tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.stop();
    });
    let result = server.join().await;
    signal.abort();
    Ok(result?)
}

/// Takes the data directory's serve lock, held until the returned file is
/// dropped (or the process ends, however it ends).
fn serve_lock(data: &std::path::Path) -> Result<std::fs::File, CliError> {
    let path = data.join("serve.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            CliError::Usage(format!(
                "impossible d'ouvrir {} : {}",
                path.display(),
                crate::store::io_error_fr(&e)
            ))
        })?;
    crate::store::private_file(&path);
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(CliError::Usage(format!(
            "un autre « clps-node serve » utilise déjà le répertoire de données {} : arrêtez-le d'abord",
            data.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(CliError::Usage(format!(
            "impossible de verrouiller {} : {}",
            path.display(),
            crate::store::io_error_fr(&e)
        ))),
    }
}

/// Opens an initialised data directory.
pub(crate) async fn open_existing(data: &std::path::Path) -> Result<Store, CliError> {
    let store = Store::open(data, OpenMode::Existing)?;
    store
        .call(|c| crate::centre::require_identity(c).map(|_| ()))
        .await?;
    Ok(store)
}

async fn crud<F: Fields>(data: &std::path::Path, action: Crud<F>) -> Result<(), CliError> {
    let store = open_existing(data).await?;
    let label = F::KIND.label();
    match action {
        Crud::Add(fields) => {
            let id = store
                .call(move |c| {
                    let mut record = F::Record::default();
                    fields.apply(&mut record);
                    let tx = c.transaction()?;
                    let id = F::save(&tx, &record)?;
                    tx.commit()?;
                    Ok(id)
                })
                .await?;
            println!("{} n° {id} ajouté(e)", capitalise(label));
        }
        Crud::Edit { id, fields } => {
            store
                .call(move |c| {
                    let tx = c.transaction()?;
                    let mut record = F::load(&tx, id)?;
                    fields.apply(&mut record);
                    F::set_id(&mut record, id);
                    F::save(&tx, &record)?;
                    tx.commit()?;
                    Ok(())
                })
                .await?;
            println!("{} n° {id} modifié(e)", capitalise(label));
        }
        Crud::Delete { id } => {
            store
                .call(move |c| {
                    let tx = c.transaction()?;
                    records::delete(&tx, F::KIND, id)?;
                    tx.commit()?;
                    Ok(())
                })
                .await?;
            println!("{} n° {id} supprimé(e)", capitalise(label));
        }
        Crud::Show { id } => {
            let record = store.call(move |c| Ok(F::load(c, id)?)).await?;
            let value = serde_json::to_value(&record).unwrap_or_default();
            if let serde_json::Value::Object(map) = value {
                for (key, value) in map {
                    let shown = match value {
                        serde_json::Value::Null => "—".to_owned(),
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    println!("{:<16} {shown}", french_field(&key));
                }
            }
        }
        Crud::List { year } => {
            let rows = store
                .call(move |c| {
                    let ids = records::list_ids(c, F::KIND, year)?;
                    let mut out = Vec::with_capacity(ids.len());
                    for id in ids {
                        out.push((id, F::summary(&F::load(c, id)?)));
                    }
                    Ok(out)
                })
                .await?;
            for (id, summary) in &rows {
                println!("{id:>6}  {summary}");
            }
            println!("{} {label}(s)", rows.len());
        }
    }
    Ok(())
}

/// An error and its sources on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(" : ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn format_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

fn french_field(key: &str) -> &str {
    match key {
        "id" => "n°",
        "name" => "nom",
        "org_type" => "type",
        "sector" => "secteur",
        "commune" => "commune",
        "first_name" => "prénom",
        "last_name" => "nom",
        "email" => "e-mail",
        "phone" => "téléphone",
        "organisation_id" => "organisation",
        "person_id" => "personne",
        "date" => "date",
        "service_type" => "type de service",
        "profession" => "profession",
        "contact_mode" => "mode de contact",
        "themes" => "thématiques",
        "note" => "note",
        "item_ref" => "exemplaire",
        "document_type" => "type de document",
        "theme" => "thématique",
        "out_date" => "sortie",
        "due_date" => "retour prévu",
        "returned_date" => "rendu le",
        "title" => "titre",
        "scheme" => "dispositif",
        "start_date" => "début",
        "end_date" => "fin",
        "axes" => "axes",
        "kind" => "type",
        "organisers" => "organisateurs",
        "participants" => "participants",
        other => other,
    }
}

async fn run_seed(
    data: &std::path::Path,
    year: i32,
    calibration: bool,
    scale: f64,
    seed_n: u64,
) -> Result<(), CliError> {
    let store = open_existing(data).await?;
    let identity = store.call(|c| crate::centre::require_identity(c)).await?;
    let options = SeedOptions {
        centre: identity.centre.clone(),
        year,
        calibration,
        scale,
        seed: seed_n,
    };
    let plan = seed::plan(&options)?;
    let existing = store
        .call(move |c| Ok(records::list_ids(c, Kind::Request, Some(year))?.len()))
        .await?;
    if existing > 0 {
        return Err(CliError::AlreadySeeded(year));
    }
    let n_requests = plan.n_requests();
    let plan = std::sync::Arc::new(plan);
    let steps = 1 + plan.months.len() as u64;
    let interactive = std::io::stderr().is_terminal();
    let bar = if interactive {
        indicatif::ProgressBar::new(steps)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:30} [{bar:30}] {pos}/{len}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("organisations et contacts");
    let p = plan.clone();
    let ids = std::sync::Arc::new(
        store
            .call(move |c| {
                let tx = c.transaction()?;
                let ids = seed::write_people(&tx, &p)?;
                tx.commit()?;
                Ok(ids)
            })
            .await?,
    );
    bar.inc(1);
    if !interactive {
        eprintln!("lot 1/{steps} écrit (organisations et contacts)");
    }
    for month in 0..plan.months.len() {
        bar.set_message(format!("mois {:02}/{year}", month + 1));
        let p = plan.clone();
        let ids = ids.clone();
        store
            .call(move |c| {
                let tx = c.transaction()?;
                seed::write_month(&tx, &p.months[month], &ids)?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        bar.inc(1);
        if !interactive {
            eprintln!("lot {}/{steps} écrit (mois {:02})", month + 2, month + 1);
        }
    }
    bar.finish_and_clear();
    let month_totals =
        |f: fn(&seed::MonthPlan) -> usize| -> usize { plan.months.iter().map(f).sum() };
    println!(
        "{} — année {year} générée : {} organisations, {} contacts, {n_requests} demandes, {} prêts, {} accompagnements, {} événements",
        identity.centre.centre().name,
        plan.organisations.len(),
        plan.persons.len(),
        month_totals(|m| m.loans.len()),
        month_totals(|m| m.accompaniments.len()),
        month_totals(|m| m.events.len()),
    );
    Ok(())
}
