//! `clps-node appui …`: the inter-points d'appui repositories for staff, in
//! French: membership, services directory, tool selections and counts,
//! meetings, co-written documents with named versions, and publication.
//!
//! Each command that writes is one typed operation on the repository and one
//! SQLite transaction (see `crate::appui::with_appui`); `clps-node sync`
//! carries it to the hub.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use clps_model::CentreId;
use clps_model::docs::appui::{self as model_appui, Event, Place, SelectionKey, ServiceInput};
use clps_model::docs::catalogue::RecordId;
use rand::RngCore;

use crate::appui::{self, Access, AppuiError, french};
use crate::appui_export;
use crate::cli::CliError;
use crate::store::{Store, StoreError};

#[derive(Debug, Subcommand)]
pub enum AppuiCommand {
    /// Crée le dépôt d'un point d'appui ; ce centre en devient membre.
    Create { scheme: String },
    /// Invite un autre centre dans le point d'appui.
    Invite {
        scheme: String,
        /// Identifiant du centre invité (par exemple namur).
        #[arg(long)]
        centre: String,
    },
    /// Inscrit ce centre comme membre d'un point d'appui existant.
    Join { scheme: String },
    /// Centres membres du point d'appui.
    Members { scheme: String },
    /// Répertoire des services spécialisés.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Sélectionne un outil du catalogue pour une thématique et un public.
    Select(SelectArgs),
    /// Retire un outil d'une sélection.
    Unselect {
        scheme: String,
        #[arg(long)]
        record: String,
        #[arg(long)]
        theme: String,
        #[arg(long, default_value = "tous")]
        public: String,
    },
    /// Sélections d'outils.
    #[command(subcommand)]
    Selection(SelectionCommand),
    /// Nombre d'outils pédagogiques du catalogue par thématique du point d'appui.
    ToolsCount { scheme: String },
    /// Rencontres inter-points d'appui.
    #[command(subcommand, visible_alias = "evenement")]
    Event(EventCommand),
    /// Documents co-écrits.
    #[command(subcommand)]
    Doc(DocCommand),
    /// Valeurs modifiées en même temps par plusieurs centres.
    Conflicts { scheme: String },
    /// Publie le répertoire, les sélections et une version de document (HTML ou Markdown).
    Export(ExportArgs),
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Ajoute ou complète une organisation (la même organisation ajoutée par deux centres reste une seule entrée).
    Add(Box<ServiceArgs>),
    /// Liste le répertoire, avec les centres qui répertorient chaque entrée et leurs notes.
    List { scheme: String },
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    scheme: String,
    /// Nom de l'organisation.
    #[arg(long)]
    name: String,
    /// Type d'organisation (asbl, service_public, centre_planning…).
    #[arg(long = "type")]
    org_type: Option<String>,
    /// Secteur (code de la liste des secteurs).
    #[arg(long)]
    sector: Option<String>,
    /// Commune desservie (répétable).
    #[arg(long = "commune")]
    communes: Vec<String>,
    /// Thématique (code, répétable).
    #[arg(long = "theme")]
    themes: Vec<String>,
    /// Ce que l'organisation propose aux écoles.
    #[arg(long)]
    offer: Option<String>,
    /// Adresse générique de l'organisation (info@…), jamais celle d'une personne.
    #[arg(long)]
    contact_email: Option<String>,
    /// Standard téléphonique de l'organisation.
    #[arg(long)]
    contact_phone: Option<String>,
    /// Note de ce centre sur l'organisation.
    #[arg(long)]
    note: Option<String>,
}

#[derive(Debug, Args)]
pub struct SelectArgs {
    scheme: String,
    /// Identifiant de la notice au catalogue.
    #[arg(long)]
    record: String,
    /// Thématique (code).
    #[arg(long)]
    theme: String,
    /// Public visé (adolescents, enseignants…).
    #[arg(long, default_value = "tous")]
    public: String,
    /// Pourquoi ce centre choisit cet outil.
    #[arg(long)]
    why: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SelectionCommand {
    /// Liste les sélections avec les titres du catalogue et les raisons de chaque centre.
    List { scheme: String },
}

#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Enregistre une rencontre.
    Add(EventArgs),
    /// Remplace le procès-verbal d'une rencontre (fusion caractère par caractère).
    Minutes {
        scheme: String,
        #[arg(long)]
        id: String,
        /// Fichier texte du procès-verbal.
        #[arg(long)]
        file: PathBuf,
    },
    /// Liste les rencontres.
    List { scheme: String },
}

#[derive(Debug, Args)]
pub struct EventArgs {
    scheme: String,
    /// Date (AAAA-MM-JJ).
    #[arg(long)]
    date: String,
    #[arg(long, default_value = "Rencontre inter-points d'appui")]
    title: String,
    /// Lieu (locaux d'une organisation, ville ; jamais une adresse privée).
    #[arg(long, conflicts_with = "video", required_unless_present = "video")]
    place: Option<String>,
    /// Rencontre en visioconférence.
    #[arg(long)]
    video: bool,
    /// Centre présent (répétable).
    #[arg(long = "centre")]
    centres: Vec<String>,
    /// Ordre du jour.
    #[arg(long, default_value = "")]
    agenda: String,
}

#[derive(Debug, Subcommand)]
pub enum DocCommand {
    /// Commence un document co-écrit.
    Create {
        scheme: String,
        /// Identifiant court (a-z, 0-9, - et _).
        #[arg(long)]
        id: String,
        #[arg(long)]
        title: String,
        /// Texte initial (sinon vide).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Remplace le texte par celui du fichier ; seules les différences sont écrites, caractère par caractère.
    Edit {
        scheme: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Nomme l'état actuel du document (« publié 2021-12 »).
    Version {
        scheme: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
    },
    /// Affiche le texte (actuel, ou exactement tel qu'il était à une version nommée).
    Show {
        scheme: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        version: Option<String>,
    },
    /// Liste les documents et leurs versions nommées.
    List { scheme: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Html,
    Markdown,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    scheme: String,
    #[arg(long, value_enum, default_value_t = ExportFormat::Html)]
    format: ExportFormat,
    /// Répertoire où écrire la page.
    #[arg(long)]
    out: PathBuf,
    /// Document co-écrit à joindre.
    #[arg(long)]
    doc: Option<String>,
    /// Version nommée du document (sinon le texte actuel).
    #[arg(long, requires = "doc")]
    version: Option<String>,
}

fn usage(message: String) -> CliError {
    CliError::Usage(message)
}

fn centre_id(s: &str) -> Result<CentreId, CliError> {
    Ok(CentreId::new(s)?)
}

fn record_id(s: &str) -> Result<RecordId, CliError> {
    RecordId::parse(s).map_err(|_| usage(format!("identifiant de notice invalide « {s} »")))
}

fn read_file(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| usage(format!("impossible de lire {} : {e}", path.display())))
}

fn names(centres: &BTreeSet<CentreId>) -> String {
    centres
        .iter()
        .map(|c| c.centre().name.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn run(store: &Store, command: AppuiCommand) -> Result<(), CliError> {
    match command {
        AppuiCommand::Create { scheme } => {
            let s = scheme.clone();
            store
                .call(move |c| {
                    appui::with_appui(c, &s, Access::Create, |d| {
                        d.join().map_err(|e| french(e, None))
                    })
                })
                .await?;
            println!(
                "Dépôt « {} » créé (appui/{scheme}) ; ce centre en est membre. Invitez les autres centres avec « appui invite {scheme} --centre ID ».",
                appui::scheme_label(&scheme)
            );
        }
        AppuiCommand::Invite { scheme, centre } => {
            let invited = centre_id(&centre)?;
            let i = invited.clone();
            store
                .call(move |c| {
                    appui::with_appui(c, &scheme, Access::Member, |d| {
                        d.invite(&i).map_err(|e| french(e, None))
                    })
                })
                .await?;
            println!(
                "{} ({invited}) invité ; il verra le dépôt après synchronisation si le hub l'admet dans l'espace.",
                invited.centre().name
            );
        }
        AppuiCommand::Join { scheme } => {
            let s = scheme.clone();
            store
                .call(move |c| {
                    appui::with_appui(c, &s, Access::Join, |d| {
                        d.join().map_err(|e| french(e, None))
                    })
                })
                .await?;
            println!("Ce centre est membre du point d'appui « {scheme} ».");
        }
        AppuiCommand::Members { scheme } => {
            let members = store
                .call(move |c| Ok(appui::open(c, &scheme)?.members()))
                .await?;
            for m in &members {
                println!("{m:<20} {}", m.centre().name);
            }
            println!("{} centre(s) membre(s)", members.len());
        }
        AppuiCommand::Service(ServiceCommand::Add(args)) => add_service(store, *args).await?,
        AppuiCommand::Service(ServiceCommand::List { scheme }) => {
            let entries = store
                .call(move |c| Ok(appui::open(c, &scheme)?.services()))
                .await?;
            for s in &entries {
                println!("{} [{}]", s.name, s.key);
                let mut facts = Vec::new();
                if !s.org_type.is_empty() {
                    facts.push(format!("type {}", s.org_type));
                }
                if !s.sector.is_empty() {
                    facts.push(format!("secteur {}", s.sector));
                }
                if !s.communes.is_empty() {
                    facts.push(format!(
                        "communes {}",
                        s.communes.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
                if !s.themes.is_empty() {
                    facts.push(format!(
                        "thématiques {}",
                        s.themes
                            .iter()
                            .map(|t| appui::theme_label(t))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                if !facts.is_empty() {
                    println!("  {}", facts.join(" ; "));
                }
                if !s.offer_to_schools.is_empty() {
                    println!("  offre aux écoles : {}", s.offer_to_schools);
                }
                if !s.email.is_empty() || !s.phone.is_empty() {
                    println!("  contact : {} {}", s.email, s.phone);
                }
                println!("  répertorié par : {}", names(&s.listed_by));
                for (centre, note) in &s.notes {
                    println!("  note de {centre} : {note}");
                }
            }
            println!("{} entrée(s) au répertoire", entries.len());
        }
        AppuiCommand::Select(args) => {
            let selection = SelectionKey {
                theme: args.theme,
                public: args.public,
            };
            let record = record_id(&args.record)?;
            let (r, why, sel) = (record.clone(), args.why, selection.clone());
            let title = store
                .call(move |c| {
                    appui::with_appui(c, &args.scheme, Access::Member, |d| {
                        d.select_tool(&sel, &r, why.as_deref())
                            .map_err(|e| french(e, None))
                    })?;
                    Ok(appui::tool_infos(c, [&r])?.remove(&r).map(|i| i.title))
                })
                .await?;
            match title {
                Some(t) => println!(
                    "« {t} » sélectionné pour {} / {}",
                    appui::theme_label(&selection.theme),
                    selection.public
                ),
                None => println!(
                    "Notice {record} sélectionnée pour {} / {} (absente du catalogue de ce nœud pour l'instant)",
                    appui::theme_label(&selection.theme),
                    selection.public
                ),
            }
        }
        AppuiCommand::Unselect {
            scheme,
            record,
            theme,
            public,
        } => {
            let record = record_id(&record)?;
            let r = record.clone();
            store
                .call(move |c| {
                    appui::with_appui(c, &scheme, Access::Member, |d| {
                        d.unselect_tool(&SelectionKey { theme, public }, &r)
                            .map_err(|e| french(e, None))
                    })
                })
                .await?;
            println!("Notice {record} retirée de la sélection");
        }
        AppuiCommand::Selection(SelectionCommand::List { scheme }) => {
            let p = store
                .call(move |c| appui::publication(c, &scheme, None))
                .await?;
            let mut n = 0;
            for (key, tools) in &p.selections {
                println!("{} / {}", appui::theme_label(&key.theme), key.public);
                for (record, tool) in tools {
                    n += 1;
                    let title = p
                        .tools
                        .get(record)
                        .map(|i| i.title.clone())
                        .unwrap_or_else(|| "(notice pas encore reçue)".to_owned());
                    println!("  {title} [{record}]");
                    for (centre, why) in &tool.why {
                        println!("    {centre} : {why}");
                    }
                }
            }
            println!("{n} outil(s) sélectionné(s)");
        }
        AppuiCommand::ToolsCount { scheme } => {
            let counts = store
                .call(move |c| {
                    let doc = appui::open(c, &scheme)?;
                    appui::tool_counts(c, &doc)
                })
                .await?;
            println!(
                "{:<32} {:>10} {:>14}",
                "thématique", "au catalogue", "sélectionnés"
            );
            for c in &counts {
                println!(
                    "{:<32} {:>10} {:>14}",
                    c.label, c.tools_in_catalogue, c.selected
                );
            }
        }
        AppuiCommand::Event(EventCommand::Add(args)) => {
            let mut bytes = [0u8; 8];
            rand::rng().fill_bytes(&mut bytes);
            let id = model_appui::entry_id("rencontre", bytes);
            let centres = args
                .centres
                .iter()
                .map(|c| centre_id(c))
                .collect::<Result<BTreeSet<_>, _>>()?;
            let event = Event {
                id: id.clone(),
                title: args.title,
                date: args.date,
                place: match args.place {
                    Some(p) if !args.video => Place::Venue(p),
                    _ => Place::Video,
                },
                centres_present: centres,
                agenda: args.agenda,
                minutes: String::new(),
            };
            store
                .call(move |c| {
                    appui::with_appui(c, &args.scheme, Access::Member, |d| {
                        d.add_event(&event).map_err(|e| french(e, None))
                    })
                })
                .await?;
            println!("Rencontre ajoutée : {id}");
        }
        AppuiCommand::Event(EventCommand::Minutes { scheme, id, file }) => {
            let text = read_file(&file)?;
            store
                .call(move |c| {
                    appui::with_appui(c, &scheme, Access::Member, |d| {
                        d.update_minutes(&id, &text).map_err(|e| french(e, None))
                    })
                })
                .await?;
            println!("Procès-verbal écrit");
        }
        AppuiCommand::Event(EventCommand::List { scheme }) => {
            let events = store
                .call(move |c| Ok(appui::open(c, &scheme)?.events()))
                .await?;
            for ev in &events {
                let place = match &ev.place {
                    Place::Venue(v) => v.clone(),
                    Place::Video => "visioconférence".to_owned(),
                };
                println!("{} — {} — {place} [{}]", ev.date, ev.title, ev.id);
                println!("  centres présents : {}", names(&ev.centres_present));
                if !ev.agenda.is_empty() {
                    println!("  ordre du jour : {}", ev.agenda);
                }
                if !ev.minutes.is_empty() {
                    println!(
                        "  procès-verbal : {} caractère(s)",
                        ev.minutes.chars().count()
                    );
                }
            }
            println!("{} rencontre(s)", events.len());
        }
        AppuiCommand::Doc(command) => run_doc(store, command).await?,
        AppuiCommand::Conflicts { scheme } => {
            let conflicts = store
                .call(move |c| Ok(appui::open(c, &scheme)?.conflicts()))
                .await?;
            for c in &conflicts {
                println!("{} {} : {}", c.container, c.key, c.values.join(" | "));
            }
            println!("{} conflit(s)", conflicts.len());
        }
        AppuiCommand::Export(args) => export(store, args).await?,
    }
    Ok(())
}

async fn add_service(store: &Store, args: ServiceArgs) -> Result<(), CliError> {
    let input = ServiceInput {
        name: args.name,
        org_type: args.org_type,
        sector: args.sector,
        communes: args.communes.into_iter().collect(),
        themes: args.themes.into_iter().collect(),
        offer_to_schools: args.offer,
        email: args.contact_email,
        phone: args.contact_phone,
        note: args.note,
    };
    let scheme = args.scheme;
    let entry = store
        .call(move |c| {
            let key = appui::with_appui(c, &scheme, Access::Member, |d| {
                d.upsert_service(&input)
                    .map_err(|e| french(e, input.email.as_deref()))
            })?;
            let doc = appui::open(c, &scheme)?;
            doc.services()
                .into_iter()
                .find(|s| s.key == key)
                .ok_or_else(|| {
                    StoreError::Invalid(format!("entrée {key} introuvable après écriture"))
                })
        })
        .await?;
    println!(
        "Entrée « {} » ajoutée [{}] ; répertoriée par : {}",
        entry.name,
        entry.key,
        names(&entry.listed_by)
    );
    Ok(())
}

async fn run_doc(store: &Store, command: DocCommand) -> Result<(), CliError> {
    match command {
        DocCommand::Create {
            scheme,
            id,
            title,
            file,
        } => {
            let body = match &file {
                Some(f) => read_file(f)?,
                None => String::new(),
            };
            let i = id.clone();
            store
                .call(move |c| {
                    appui::with_appui(c, &scheme, Access::Member, |d| {
                        d.create_document(&i, &title, &body)
                            .map_err(|e| french(e, None))
                    })
                })
                .await?;
            println!("Document « {id} » créé");
        }
        DocCommand::Edit { scheme, id, file } => {
            let body = read_file(&file)?;
            let i = id.clone();
            let n = store
                .call(move |c| {
                    appui::with_appui(c, &scheme, Access::Member, |d| {
                        if !d.documents().iter().any(|doc| doc.id == i) {
                            return Err(AppuiError::NoDocument(i.clone()));
                        }
                        d.update_document(&i, &body).map_err(|e| french(e, None))?;
                        Ok(body.chars().count())
                    })
                })
                .await?;
            println!("Document « {id} » modifié ({n} caractère(s))");
        }
        DocCommand::Version { scheme, id, name } => {
            let (i, n) = (id.clone(), name.clone());
            store
                .call(move |c| {
                    appui::with_appui(c, &scheme, Access::Member, |d| {
                        if !d.documents().iter().any(|doc| doc.id == i) {
                            return Err(AppuiError::NoDocument(i.clone()));
                        }
                        d.name_version(&i, &n).map_err(|e| french(e, None))
                    })
                })
                .await?;
            println!("Version « {name} » du document « {id} » nommée");
        }
        DocCommand::Show {
            scheme,
            id,
            version,
        } => {
            let v = store
                .call(move |c| {
                    let doc = appui::open(c, &scheme)?;
                    Ok(appui::document_version(&doc, &id, version.as_deref())?)
                })
                .await?;
            // The text exactly as stored: no heading, no added newline, so a
            // named version can be compared byte for byte.
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(v.text.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| usage(format!("écriture impossible : {e}")))?;
        }
        DocCommand::List { scheme } => {
            let docs = store
                .call(move |c| Ok(appui::open(c, &scheme)?.documents()))
                .await?;
            for d in &docs {
                let versions: Vec<&str> = d.versions.keys().map(String::as_str).collect();
                println!(
                    "{} — {} ({} caractère(s)) ; versions : {}",
                    d.id,
                    d.title,
                    d.body.chars().count(),
                    if versions.is_empty() {
                        "aucune".to_owned()
                    } else {
                        versions.join(", ")
                    }
                );
            }
            println!("{} document(s)", docs.len());
        }
    }
    Ok(())
}

async fn export(store: &Store, args: ExportArgs) -> Result<(), CliError> {
    let scheme = args.scheme.clone();
    let (doc, version) = (args.doc.clone(), args.version.clone());
    let publication = store
        .call(move |c| {
            appui::publication(c, &scheme, doc.as_deref().map(|d| (d, version.as_deref())))
        })
        .await?;
    let (text, ext) = match args.format {
        ExportFormat::Html => (appui_export::html(&publication), "html"),
        ExportFormat::Markdown => (appui_export::markdown(&publication), "md"),
    };
    std::fs::create_dir_all(&args.out)
        .map_err(|e| usage(format!("impossible de créer {} : {e}", args.out.display())))?;
    let path = args.out.join(format!("point-appui-{}.{ext}", args.scheme));
    std::fs::write(&path, text)
        .map_err(|e| usage(format!("impossible d'écrire {} : {e}", path.display())))?;
    println!(
        "Publication écrite : {} ({} service(s), {} sélection(s))",
        path.display(),
        publication.services.len(),
        publication.selections.len()
    );
    Ok(())
}
