//! `clps-node catalogue …`: the shared catalogue for staff, in French.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use clps_model::docs::catalogue::{
    Availability, Holding, Record, RecordEdit, RecordFields, RecordId, Review, ReviewerRole,
};
use clps_model::vocab;

use crate::app::Node;
use crate::app::catalogue::CatalogueError;
use crate::catalogue::SearchQuery;
use crate::cli::CliError;
use crate::store::StoreError;

#[derive(Debug, Subcommand)]
pub enum CatalogueCommand {
    /// Recherche dans le catalogue (sans tenir compte des accents).
    Search {
        /// Mots recherchés (titre, auteurs, éditeur, description, thématiques).
        #[arg(default_value = "")]
        text: String,
        #[arg(long)]
        theme: Option<String>,
        #[arg(long = "type")]
        doc_type: Option<String>,
        #[arg(long)]
        public: Option<String>,
        /// Seulement ce que détient ce centre.
        #[arg(long)]
        centre: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Ajoute une notice au catalogue partagé.
    Add(AddArgs),
    /// Modifie une notice.
    Edit(EditArgs),
    /// Affiche une notice.
    Show { id: String },
    /// Exemplaires de ce centre pour une notice.
    Holding {
        id: String,
        #[arg(long)]
        copies: u32,
        #[arg(long, default_value = "")]
        shelf_mark: String,
        /// available, on_loan, reference_only ou withdrawn.
        #[arg(long, default_value = "available")]
        availability: String,
    },
    /// Avis du centre sur un outil (signé par une fonction, jamais par une personne).
    Review {
        id: String,
        /// documentaliste, charge_projet, animateur, formateur, direction ou equipe.
        #[arg(long)]
        role: String,
        /// De 1 à 5.
        #[arg(long)]
        rating: u8,
        #[arg(long, default_value = "")]
        text: String,
    },
    /// Champs modifiés en même temps par plusieurs centres.
    Conflicts,
    /// Notices probablement en double (titre, éditeur, année).
    Duplicates,
    /// Fusionne deux doublons : l'une devient un alias de l'autre.
    Merge { a: String, b: String },
    /// Importe un export CSV du logiciel de bibliothèque.
    Import { file: PathBuf },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[arg(long)]
    title: String,
    /// Type de document (code).
    #[arg(long = "type")]
    doc_type: String,
    #[arg(long, default_value = "")]
    creator: String,
    #[arg(long, default_value = "")]
    publisher: String,
    #[arg(long)]
    year: Option<u16>,
    #[arg(long = "theme")]
    themes: Vec<String>,
    #[arg(long = "public")]
    publics: Vec<String>,
    #[arg(long)]
    age_min: Option<u8>,
    #[arg(long)]
    age_max: Option<u8>,
    #[arg(long, default_value = "")]
    description: String,
    #[arg(long, default_value = "")]
    conditions: String,
    #[arg(long = "language")]
    languages: Vec<String>,
    #[arg(long = "link")]
    links: Vec<String>,
    /// Exemplaires détenus par ce centre.
    #[arg(long)]
    copies: Option<u32>,
    #[arg(long, default_value = "")]
    shelf_mark: String,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    id: String,
    #[arg(long)]
    title: Option<String>,
    #[arg(long = "type")]
    doc_type: Option<String>,
    #[arg(long)]
    creator: Option<String>,
    #[arg(long)]
    publisher: Option<String>,
    #[arg(long)]
    year: Option<u16>,
    #[arg(long)]
    description: Option<String>,
    #[arg(long)]
    conditions: Option<String>,
    #[arg(long = "add-theme")]
    add_themes: Vec<String>,
    #[arg(long = "remove-theme")]
    remove_themes: Vec<String>,
    #[arg(long = "add-public")]
    add_publics: Vec<String>,
    #[arg(long = "remove-public")]
    remove_publics: Vec<String>,
}

fn record_id(s: &str) -> Result<RecordId, CliError> {
    RecordId::parse(s)
        .map_err(|_| CliError::Usage(format!("identifiant de notice invalide « {s} »")))
}

fn print_record(r: &Record) {
    let v = vocab::get();
    let f = &r.fields;
    println!("Notice {}", r.id);
    println!("  titre            {}", f.title);
    println!(
        "  type             {}",
        v.document_types.label(&f.doc_type).unwrap_or(&f.doc_type)
    );
    if !f.creator.is_empty() {
        println!("  auteurs          {}", f.creator);
    }
    if !f.publisher.is_empty() {
        println!("  éditeur          {}", f.publisher);
    }
    if let Some(y) = f.year {
        println!("  année            {y}");
    }
    let themes: Vec<&str> = f
        .themes
        .iter()
        .map(|t| v.themes.label(t).unwrap_or(t))
        .collect();
    println!("  thématiques      {}", themes.join(", "));
    if !f.publics.is_empty() {
        println!(
            "  publics          {}",
            f.publics.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if !f.description.is_empty() {
        println!("  description      {}", f.description);
    }
    for (centre, h) in &r.holdings {
        println!(
            "  exemplaires      {centre} : {} ({}, cote « {} »)",
            h.copies,
            h.availability.code(),
            h.shelf_mark
        );
    }
    for (key, review) in &r.reviews {
        println!(
            "  avis             {} / {} : {}/5 {}",
            key.centre,
            key.role.code(),
            review.rating,
            review.text
        );
    }
    for (distributor, n) in &r.downloads {
        println!("  téléchargements  {distributor} : {n}");
    }
    if let Some(into) = &r.merged_into {
        println!("  fusionnée dans   {into}");
    }
    if !r.aliases.is_empty() {
        println!(
            "  alias            {}",
            r.aliases
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(c) = &r.created_by {
        println!("  créée par        {c}");
    }
    if let Some(c) = &r.last_edited_by {
        println!("  modifiée par     {c}");
    }
}

/// The CLI keeps the storage errors' own sentences; a missing record is
/// said the CLI's way.
fn cli_error(e: CatalogueError) -> CliError {
    match e {
        CatalogueError::NotFound(id) => {
            CliError::Usage(format!("aucune notice {id} dans le catalogue"))
        }
        CatalogueError::Store(s) => CliError::Store(s),
        other => CliError::Catalogue(other),
    }
}

pub async fn run(node: &Node, command: CatalogueCommand) -> Result<(), CliError> {
    match command {
        CatalogueCommand::Search {
            text,
            theme,
            doc_type,
            public,
            centre,
            limit,
        } => {
            let q = SearchQuery {
                text,
                theme,
                doc_type,
                public,
                centre,
                available: false,
                age: None,
                year_from: None,
                year_to: None,
                limit,
            };
            let hits = node.search_hits(q).await.map_err(cli_error)?;
            for h in &hits {
                println!(
                    "{:<28} {} — {}{}",
                    h.record_id,
                    h.title,
                    h.doc_type,
                    h.year.map(|y| format!(", {y}")).unwrap_or_default()
                );
            }
            println!("{} résultat(s)", hits.len());
        }
        CatalogueCommand::Add(a) => {
            let fields = RecordFields {
                title: a.title,
                doc_type: a.doc_type,
                creator: a.creator,
                publisher: a.publisher,
                year: a.year,
                themes: a.themes.into_iter().collect(),
                publics: a.publics.into_iter().collect(),
                age_min: a.age_min,
                age_max: a.age_max,
                description: a.description,
                conditions_of_use: a.conditions,
                languages: a.languages.into_iter().collect(),
                links: a.links.into_iter().collect(),
            };
            let holding = a.copies.map(|copies| Holding {
                copies,
                shelf_mark: a.shelf_mark,
                availability: Availability::Available,
            });
            let id = node
                .add_fields(fields, holding, None)
                .await
                .map_err(cli_error)?;
            println!("Notice {id} ajoutée au catalogue partagé");
        }
        CatalogueCommand::Edit(e) => {
            let id = record_id(&e.id)?;
            let mut edits = Vec::new();
            if let Some(t) = e.title {
                edits.push(RecordEdit::Title(t));
            }
            if let Some(t) = e.doc_type {
                edits.push(RecordEdit::DocType(t));
            }
            if let Some(t) = e.creator {
                edits.push(RecordEdit::Creator(t));
            }
            if let Some(t) = e.publisher {
                edits.push(RecordEdit::Publisher(t));
            }
            if let Some(y) = e.year {
                edits.push(RecordEdit::Year(Some(y)));
            }
            if let Some(d) = e.description {
                edits.push(RecordEdit::ReplaceDescription(d));
            }
            if let Some(c) = e.conditions {
                edits.push(RecordEdit::ConditionsOfUse(c));
            }
            edits.extend(e.add_themes.into_iter().map(RecordEdit::AddTheme));
            edits.extend(e.remove_themes.into_iter().map(RecordEdit::RemoveTheme));
            edits.extend(e.add_publics.into_iter().map(RecordEdit::AddPublic));
            edits.extend(e.remove_publics.into_iter().map(RecordEdit::RemovePublic));
            if edits.is_empty() {
                return Err(CliError::Usage("aucune modification demandée".into()));
            }
            node.edit_fields(id.as_str(), edits, None)
                .await
                .map_err(cli_error)?;
            println!("Notice {id} modifiée");
        }
        CatalogueCommand::Show { id } => {
            let id = record_id(&id)?;
            let record = node.stored_record(id.as_str()).await.map_err(cli_error)?;
            print_record(&record);
        }
        CatalogueCommand::Holding {
            id,
            copies,
            shelf_mark,
            availability,
        } => {
            let id = record_id(&id)?;
            let availability = Availability::from_code(&availability).ok_or_else(|| {
                CliError::Usage(format!(
                    "disponibilité inconnue « {availability} » (available, on_loan, reference_only, withdrawn)"
                ))
            })?;
            let holding = Holding {
                copies,
                shelf_mark,
                availability,
            };
            node.set_holding(id.as_str(), holding, None)
                .await
                .map_err(cli_error)?;
            println!("Exemplaires du centre mis à jour pour {id}");
        }
        CatalogueCommand::Review {
            id,
            role,
            rating,
            text,
        } => {
            let id = record_id(&id)?;
            let role = ReviewerRole::from_code(&role).ok_or_else(|| {
                CliError::Usage(format!(
                    "fonction inconnue « {role} » (documentaliste, charge_projet, animateur, formateur, direction, equipe)"
                ))
            })?;
            let review = Review { rating, text };
            node.set_review(id.as_str(), role, review, None)
                .await
                .map_err(cli_error)?;
            println!("Avis mis à jour pour {id}");
        }
        CatalogueCommand::Conflicts => {
            let conflicts = node.conflicts().await.map_err(cli_error)?;
            for c in &conflicts {
                println!(
                    "{} — {} : {} (valeur retenue : « {} »)",
                    c.record,
                    c.field,
                    c.values
                        .iter()
                        .map(|v| format!("« {v} »"))
                        .collect::<Vec<_>>()
                        .join(" / "),
                    c.values.first().map(String::as_str).unwrap_or("")
                );
            }
            println!("{} conflit(s)", conflicts.len());
        }
        CatalogueCommand::Duplicates => {
            let pairs = node.duplicates().await.map_err(cli_error)?;
            for (a, b) in &pairs {
                println!(
                    "{} ↔ {} — « {} » ({}, {})",
                    a.id,
                    b.id,
                    a.fields.title,
                    a.fields.publisher,
                    a.fields
                        .year
                        .map(|y| y.to_string())
                        .unwrap_or_else(|| "s.d.".into())
                );
            }
            println!("{} doublon(s) probable(s)", pairs.len());
        }
        CatalogueCommand::Merge { a, b } => {
            let (a, b) = (record_id(&a)?, record_id(&b)?);
            let plan = node
                .merge(a.as_str(), b.as_str(), None)
                .await
                .map_err(cli_error)?;
            println!(
                "Notices fusionnées : {} est conservée, {} en devient un alias",
                plan.survivor, plan.alias
            );
        }
        CatalogueCommand::Import { file } => {
            let bar = if std::io::stderr().is_terminal() {
                indicatif::ProgressBar::new(0)
            } else {
                indicatif::ProgressBar::hidden()
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template("import {bar:40} {pos}/{len} notices")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let report = node
                .import_catalogue(file, std::sync::Arc::new(bar.clone()))
                .await
                .map_err(|e| match e {
                    crate::import::ImportError::Store(s) => s,
                    other => StoreError::Invalid(other.to_string()),
                })?;
            bar.finish_and_clear();
            for (line, reason) in &report.rejected {
                println!("ligne {line} rejetée : {reason}");
            }
            println!(
                "{} ligne(s) lue(s) : {} notice(s) créée(s), {} déjà présente(s), {} rejetée(s)",
                report.rows,
                report.created,
                report.already_present,
                report.rejected.len()
            );
        }
    }
    Ok(())
}
