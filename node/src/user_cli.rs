//! `clps-node user …`: staff accounts of the web application. Passwords
//! are read from a prompt (twice, without echo) or from the first line of
//! standard input, never from the command line.

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use clap::Subcommand;

use crate::app::Node;
use crate::app::accounts::Role;
use crate::cli::CliError;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Crée un compte (mot de passe demandé, ou lu sur l'entrée standard).
    Add {
        /// Identifiant de connexion (lettres minuscules, chiffres, points, tirets).
        login: String,
        /// admin, documentaliste ou lecture.
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Liste les comptes.
    List,
    /// Désactive un compte (ses sessions sont fermées).
    Disable { login: String },
    /// Réactive un compte.
    Enable { login: String },
    /// Donne un nouveau mot de passe à un compte.
    Reset { login: String },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::from_code(s)
        .ok_or_else(|| format!("rôle inconnu « {s} » : admin, documentaliste ou lecture"))
}

fn read_password() -> Result<String, CliError> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Mot de passe : ").map_err(|e| {
            CliError::Usage(format!(
                "lecture du mot de passe : {}",
                crate::store::io_error_fr(&e)
            ))
        })?;
        let again = rpassword::prompt_password("Encore une fois : ").map_err(|e| {
            CliError::Usage(format!(
                "lecture du mot de passe : {}",
                crate::store::io_error_fr(&e)
            ))
        })?;
        if first != again {
            return Err(CliError::Usage(
                "les deux mots de passe diffèrent : rien n'a été changé".into(),
            ));
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| {
            CliError::Usage(format!(
                "lecture du mot de passe : {}",
                crate::store::io_error_fr(&e)
            ))
        })?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

pub async fn run(data: &Path, command: UserCommand) -> Result<(), CliError> {
    let node = Node::open(data).await?;
    match command {
        UserCommand::Add { login, role } => {
            let password = read_password()?;
            let account = node.add_user(&login, role, &password, None).await?;
            println!(
                "Compte « {} » créé ({}) : connexion sur la page web du nœud",
                account.login,
                crate::web::fr::role_label(account.role)
            );
        }
        UserCommand::List => {
            for a in node.users().await? {
                println!(
                    "{:<24} {:<16} {}",
                    a.login,
                    crate::web::fr::role_label(a.role),
                    if a.active { "actif" } else { "désactivé" }
                );
            }
        }
        UserCommand::Disable { login } => {
            node.set_user_active(&login, false, None).await?;
            println!("Compte « {login} » désactivé : ses sessions sont fermées");
        }
        UserCommand::Enable { login } => {
            node.set_user_active(&login, true, None).await?;
            println!("Compte « {login} » réactivé");
        }
        UserCommand::Reset { login } => {
            let password = read_password()?;
            node.reset_password(&login, &password, None).await?;
            println!("Nouveau mot de passe de « {login} » en place : ses sessions sont fermées");
        }
    }
    Ok(())
}
