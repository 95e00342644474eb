//! The French words of the web application: labels of codes, error
//! sentences from the operations' typed errors, dates as staff write them.

use clps_model::CentreId;
use clps_model::docs::catalogue::{Availability, ReviewerRole};

use crate::app::ErrorKind;
use crate::app::accounts::{AccountError, Role};
use crate::app::catalogue::{CatalogueError, Field, FieldError, Problem};
use crate::app::local;
use crate::app::sync::SyncError;

pub fn field_label(field: Field) -> &'static str {
    match field {
        Field::Title => "Titre",
        Field::DocType => "Type de document",
        Field::Creator => "Auteurs",
        Field::Publisher => "Éditeur",
        Field::Year => "Année",
        Field::Themes => "Thématiques",
        Field::Publics => "Publics",
        Field::AgeMin => "Âge minimum",
        Field::AgeMax => "Âge maximum",
        Field::Description => "Description",
        Field::Conditions => "Conditions d'utilisation",
        Field::Languages => "Langues",
        Field::Links => "Liens",
        Field::Copies => "Nombre d'exemplaires",
        Field::ShelfMark => "Cote",
        Field::Availability => "Disponibilité",
        Field::Role => "Fonction",
        Field::Rating => "Appréciation",
        Field::ReviewText => "Avis",
    }
}

/// One sentence for a field's problem.
pub fn problem(error: &FieldError) -> String {
    match &error.problem {
        Problem::Required => "Ce champ est obligatoire.".into(),
        Problem::TooLong { max } => format!("Pas plus de {max} caractères."),
        Problem::NotANumber(v) => format!("« {v} » n'est pas un nombre."),
        Problem::OutOfRange { min, max } => format!("Un nombre de {min} à {max}."),
        Problem::UnknownCode(v) => format!("« {v} » n'est pas un choix de la liste."),
        Problem::PersonalData => "Une adresse e-mail ou un numéro de téléphone ne peut pas figurer dans le catalogue partagé : il est conservé à jamais et lu par tous les centres.".into(),
        Problem::NotALink(v) => format!("« {v} » n'est pas une adresse web (http:// ou https://)."),
        Problem::NotASlug(v) => format!("« {v} » ne peut pas servir de mot-clé."),
        Problem::AgeOrder => "L'âge maximum est plus petit que l'âge minimum.".into(),
        Problem::TooMany { max } => format!("Pas plus de {max} valeurs."),
    }
}

/// A storage or hub failure, for staff.
pub fn unavailable() -> &'static str {
    "Le nœud n'a pas pu enregistrer cette modification pour l'instant (disque plein, base verrouillée ou en lecture seule) : rien n'a été écrit. Réessayez dans un instant ; si cela persiste, prévenez la personne qui administre le nœud."
}

pub fn catalogue_error(e: &CatalogueError) -> String {
    match e {
        CatalogueError::NotFound(_) => "Cette notice n'existe pas dans le catalogue.".into(),
        CatalogueError::Invalid(errors) => match errors.as_slice() {
            [one] => format!("{} : {}", field_label(one.field), problem(one)),
            _ => format!(
                "{} champs sont à corriger : rien n'a été écrit.",
                errors.len()
            ),
        },
        CatalogueError::Changed(_) => "Un autre centre a modifié la description pendant que vous l'éditiez : rien n'a été écrit. Voici la notice telle qu'elle est maintenant ; reprenez votre modification.".into(),
        CatalogueError::NoChange => "Aucune modification : la notice est restée telle quelle.".into(),
        CatalogueError::CannotMerge(..) => "Une notice ne peut pas être fusionnée avec elle-même.".into(),
        CatalogueError::Store(e) if e.kind() == ErrorKind::Unavailable => unavailable().into(),
        CatalogueError::Store(_) => "Le catalogue partagé a refusé cette modification : rien n'a été écrit.".into(),
    }
}

pub fn account_error(e: &AccountError) -> String {
    match e {
        AccountError::NotFound(login) => format!("Aucun compte « {login} »."),
        AccountError::Exists(login) => format!("Un compte « {login} » existe déjà."),
        AccountError::BadLogin(login) => format!(
            "« {login} » ne convient pas comme identifiant : de 2 à 32 lettres minuscules sans accent, chiffres, points, tirets ou soulignés."
        ),
        AccountError::WeakPassword => format!(
            "Le mot de passe doit compter au moins {} caractères.",
            crate::app::accounts::MIN_PASSWORD_CHARS
        ),
        AccountError::WrongCredentials => "Identifiant ou mot de passe incorrect.".into(),
        AccountError::Throttled(wait) => format!(
            "Trop d'essais manqués : réessayez dans {} seconde{}.",
            wait.as_secs().max(1),
            if wait.as_secs() > 1 { "s" } else { "" }
        ),
        AccountError::LastAdmin => "C'est le dernier compte d'administration actif : créez-en un autre avant de le désactiver.".into(),
        AccountError::Hash => unavailable().into(),
        AccountError::Store(_) => unavailable().into(),
    }
}

pub fn sync_error(e: &SyncError) -> String {
    match e {
        SyncError::NotJoined => "Ce nœud n'a pas encore rejoint la fédération : il travaille seul, et rien n'est envoyé.".into(),
        SyncError::Config(_) => "La configuration de la liaison avec le hub (node.toml) est illisible : prévenez la personne qui administre le nœud.".into(),
        SyncError::Unreachable(_) => "Le hub ne répond pas : vos modifications restent en attente sur ce nœud et partiront à la prochaine synchronisation.".into(),
        SyncError::Store(_) => unavailable().into(),
    }
}

pub fn role_label(role: Role) -> &'static str {
    match role {
        Role::Admin => "Administration",
        Role::Documentaliste => "Documentaliste",
        Role::Lecture => "Lecture seule",
    }
}

pub fn availability_label(a: Availability) -> &'static str {
    match a {
        Availability::Available => "disponible",
        Availability::OnLoan => "en prêt",
        Availability::ReferenceOnly => "consultation sur place",
        Availability::Withdrawn => "retiré des collections",
    }
}

pub fn reviewer_label(r: ReviewerRole) -> &'static str {
    match r {
        ReviewerRole::Documentaliste => "documentaliste",
        ReviewerRole::ChargeDeProjet => "chargée ou chargé de projet",
        ReviewerRole::Animateur => "animatrice ou animateur",
        ReviewerRole::Formateur => "formatrice ou formateur",
        ReviewerRole::Direction => "direction",
        ReviewerRole::Equipe => "équipe",
    }
}

pub fn centre_name(centre: &CentreId) -> &'static str {
    &centre.centre().name
}

/// A short centre name for tables (« CLPS de Namur » → « Namur »).
pub fn centre_short(centre: &CentreId) -> &'static str {
    &centre.centre().short
}

pub fn history_action(action: &str) -> &'static str {
    match action {
        "create" => "création de la notice",
        "edit" => "modification",
        "holding" => "exemplaires",
        "unhold" => "exemplaires retirés",
        "review" => "avis",
        "unreview" => "avis retiré",
        "merge" => "fusion de doublons",
        "downloads" => "téléchargements",
        _ => "modification",
    }
}

pub fn conflict_field(field: &str) -> &'static str {
    match field {
        "title" => "Titre",
        "doc_type" => "Type de document",
        "creator" => "Auteurs",
        "publisher" => "Éditeur",
        "year" => "Année",
        "conditions_of_use" => "Conditions d'utilisation",
        "age_min" => "Âge minimum",
        "age_max" => "Âge maximum",
        f if f.starts_with("holdings.") => "Exemplaires",
        f if f.starts_with("reviews.") => "Avis",
        _ => "Champ",
    }
}

/// Offset of Brussels time from UTC at `unix` (CET, or CEST from the last
/// Sunday of March 01:00 UTC to the last Sunday of October 01:00 UTC).
fn brussels_offset(unix: i64) -> i64 {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(unix) else {
        return 3600;
    };
    let year = t.year();
    let last_sunday = |month: time::Month| -> i64 {
        let days = time::util::days_in_month(month, year);
        let Ok(last) = time::Date::from_calendar_date(year, month, days) else {
            return 0;
        };
        let back = i64::from(last.weekday().number_days_from_sunday());
        let sunday = last - time::Duration::days(back);
        sunday
            .with_hms(1, 0, 0)
            .map(|d| d.assume_utc().unix_timestamp())
            .unwrap_or(0)
    };
    if unix >= last_sunday(time::Month::March) && unix < last_sunday(time::Month::October) {
        7200
    } else {
        3600
    }
}

/// « 02/12/2026 à 08:15 », Brussels time.
pub fn date_time(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix + brussels_offset(unix)) {
        Ok(t) => format!(
            "{:02}/{:02}/{} à {:02}:{:02}",
            t.day(),
            u8::from(t.month()),
            t.year(),
            t.hour(),
            t.minute()
        ),
        Err(_) => "date inconnue".into(),
    }
}

/// « 15/03/2021 » for an ISO date; anything else as it is.
pub fn date(iso: &str) -> String {
    match (iso.get(0..4), iso.get(5..7), iso.get(8..10)) {
        (Some(y), Some(m), Some(d)) if iso.len() == 10 => format!("{d}/{m}/{y}"),
        _ => iso.to_owned(),
    }
}

/// Today's date in Brussels, ISO (for date fields).
pub fn today(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix + brussels_offset(unix)) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => String::new(),
    }
}

/// The year of today in Brussels.
pub fn this_year(unix: i64) -> i32 {
    today(unix)
        .get(0..4)
        .and_then(|y| y.parse().ok())
        .unwrap_or(2026)
}

pub const MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// Month abbreviations as French typography writes them.
pub const MONTHS_SHORT: [&str; 12] = [
    "janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.",
    "déc.",
];

/// One sentence for a problem of a demande, organisation or person field.
pub fn local_problem(e: &local::FieldError) -> String {
    use local::Problem;
    match &e.problem {
        Problem::NotACount(v) => format!("« {v} » n'est pas un nombre de personnes."),
        Problem::InFuture(v) => format!("Le {} n'est pas encore arrivé.", date(v)),
        Problem::Required => match e.field {
            local::Field::Themes => "Cochez au moins une thématique.".into(),
            local::Field::Organisers => {
                "Cochez au moins un centre organisateur ou écrivez un partenaire.".into()
            }
            _ => "Ce champ est obligatoire.".into(),
        },
        Problem::UnknownCode(v) => format!("« {v} » n'est pas un choix de la liste."),
        Problem::BadDate(v) => {
            format!("« {v} » n'est pas une date : écrivez-la comme 15/03/2021.")
        }
        Problem::TooLong { max } => format!("Pas plus de {max} caractères."),
        Problem::BadEmail(v) => format!("« {v} » n'est pas une adresse e-mail."),
        Problem::NeedsFullName(v) => format!(
            "« {v} » : pour une nouvelle personne, écrivez le prénom puis le nom (par exemple « Marie Dubois »)."
        ),
        Problem::Ambiguous(v) => format!(
            "Plusieurs fiches s'appellent « {v} » : choisissez dans la liste celle qui porte le bon numéro."
        ),
        Problem::DateOrder => match e.field {
            local::Field::EndDate => "La date de fin précède la date de début.".into(),
            local::Field::DueDate => "Le retour prévu précède la sortie.".into(),
            _ => "La fin de la période précède son début.".into(),
        },
        Problem::NoSuchOrganisation(v) => format!(
            "Aucune organisation ne s'appelle « {v} » : choisissez-la dans la liste ou ajoutez-la d'abord dans Contacts."
        ),
    }
}

/// A failure of an operation on the centre's own records, for staff.
pub fn local_error(e: &local::LocalError) -> String {
    match e {
        local::LocalError::NotFound(kind, _) => match kind {
            crate::records::Kind::Organisation => {
                "Cette organisation n'existe pas (ou plus).".into()
            }
            crate::records::Kind::Person => "Cette personne n'existe pas (ou plus).".into(),
            crate::records::Kind::Request => "Cette demande n'existe pas (ou plus).".into(),
            crate::records::Kind::Accompaniment => {
                "Cet accompagnement n'existe pas (ou plus).".into()
            }
            crate::records::Kind::Event => "Cet événement n'existe pas (ou plus).".into(),
            _ => "Cette fiche n'existe pas (ou plus).".into(),
        },
        local::LocalError::Invalid(errors) => match errors.as_slice() {
            [one] => local_problem(one),
            _ => format!(
                "{} sont à corriger : rien n'a été écrit.",
                count(errors.len() as i64, "champ", "champs")
            ),
        },
        local::LocalError::Store(s) => match s.kind() {
            ErrorKind::Unavailable => unavailable().into(),
            _ => unavailable().into(),
        },
    }
}

/// « 0 modification », « 1 modification », « 3 modifications » (in French
/// zero takes the singular).
pub fn count(n: impl Into<i64>, one: &str, many: &str) -> String {
    let n = n.into();
    if n == 0 || n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_in_brussels_time() {
        // 2026-12-02 07:15 UTC is 08:15 in winter.
        assert_eq!(date_time(1_796_195_700), "02/12/2026 à 08:15");
        // 2026-07-01 10:00 UTC is 12:00 in summer.
        assert_eq!(date_time(1_782_900_000), "01/07/2026 à 12:00");
        assert_eq!(date("2021-03-15"), "15/03/2021");
        // 2026-12-31 23:30 UTC is already 2027 in Brussels.
        assert_eq!(today(1_798_759_800), "2027-01-01");
    }

    #[test]
    fn counts_agree_with_their_number() {
        assert_eq!(count(1, "notice", "notices"), "1 notice");
        assert_eq!(count(0, "notice", "notices"), "0 notice");
        assert_eq!(count(12, "notice", "notices"), "12 notices");
    }
}
