//! Staff accounts of the node's web application, their sessions, and the
//! local journal of who did what.
//!
//! Passwords are kept as argon2id hashes; a session is known by the SHA-256
//! of its random token (the cookie), so a copy of the database does not
//! open sessions. None of this ever enters a shared document.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};

use super::{ErrorKind, Node};
use crate::store::StoreError;

/// How long a session lasts from sign-in: a working day.
pub const SESSION_SECONDS: i64 = 12 * 3600;
/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Everything, accounts included.
    Admin,
    /// Edits the catalogue and the centre's records, runs synchronisation.
    Documentaliste,
    /// Reads only.
    Lecture,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Documentaliste, Role::Lecture];

    pub fn code(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Documentaliste => "documentaliste",
            Role::Lecture => "lecture",
        }
    }

    pub fn from_code(code: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Whether this role may change the catalogue and run a sync.
    pub fn can_edit(self) -> bool {
        matches!(self, Role::Admin | Role::Documentaliste)
    }

    pub fn is_admin(self) -> bool {
        self == Role::Admin
    }
}

/// A signed-in staff member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    pub user_id: i64,
    pub login: String,
    pub role: Role,
}

/// An open session: who, and the token every form must carry back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub staff: Staff,
    pub csrf: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user_id: i64,
    pub login: String,
    pub role: Role,
    pub active: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalLine {
    pub at: i64,
    pub login: String,
    pub action: String,
    pub target: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no account {0}")]
    NotFound(String),
    #[error("account {0} exists")]
    Exists(String),
    #[error("login « {0} » is not 2 to 32 characters of a-z, 0-9, '.', '-' or '_'")]
    BadLogin(String),
    #[error("password shorter than {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    /// Unknown login, wrong password or disabled account: one answer for all.
    #[error("wrong login or password")]
    WrongCredentials,
    #[error("too many failed sign-ins; wait {0:?}")]
    Throttled(Duration),
    #[error("the last active administrator cannot be disabled or demoted")]
    LastAdmin,
    #[error("password hashing failed")]
    Hash,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AccountError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            AccountError::NotFound(_) => ErrorKind::NotFound,
            AccountError::Exists(_) | AccountError::LastAdmin => ErrorKind::Conflict,
            AccountError::BadLogin(_) | AccountError::WeakPassword => ErrorKind::Invalid,
            AccountError::WrongCredentials | AccountError::Throttled(_) => ErrorKind::Forbidden,
            AccountError::Hash => ErrorKind::Unavailable,
            AccountError::Store(e) => e.kind(),
        }
    }
}

fn check_login(login: &str) -> Result<(), AccountError> {
    let ok = (2..=32).contains(&login.len())
        && login
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadLogin(login.to_owned()))
    }
}

fn check_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        Err(AccountError::WeakPassword)
    } else {
        Ok(())
    }
}

fn hash_password(password: &str, salt: [u8; 16]) -> Result<String, AccountError> {
    let salt = SaltString::encode_b64(&salt).map_err(|_| AccountError::Hash)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AccountError::Hash)
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Hashing takes tens of milliseconds of CPU: off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AccountError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| AccountError::Hash)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A line of the local journal, written in the transaction of the action.
#[derive(Debug, Clone)]
pub(crate) struct JournalEntry(Option<(i64, String, String, String)>);

impl JournalEntry {
    pub(crate) fn write(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        if let Some((at, login, action, target)) = &self.0 {
            tx.execute(
                "INSERT INTO staff_journal (at, login, action, target) VALUES (?1, ?2, ?3, ?4)",
                params![at, login, action, target],
            )?;
        }
        Ok(())
    }

    /// The same entry about another target (known once the work is done).
    pub(crate) fn with_target(self, target: String) -> JournalEntry {
        JournalEntry(
            self.0
                .map(|(at, login, action, _)| (at, login, action, target)),
        )
    }

    /// For operations that commit their own transaction first.
    pub(crate) fn write_alone(&self, conn: &mut Connection) -> Result<(), StoreError> {
        let tx = conn.transaction()?;
        self.write(&tx)?;
        tx.commit()?;
        Ok(())
    }
}

fn read_account(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    let role: String = r.get(2)?;
    Ok(Account {
        user_id: r.get(0)?,
        login: r.get(1)?,
        role: Role::from_code(&role).unwrap_or(Role::Lecture),
        active: r.get::<_, i64>(3)? == 1,
        created_at: r.get(4)?,
    })
}

const ACCOUNT_COLUMNS: &str = "user_id, login, role, active, created_at";

fn active_admins_other_than(conn: &Connection, login: &str) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM staff_users WHERE role = 'admin' AND active = 1 AND login != ?1",
        [login],
        |r| r.get(0),
    )?)
}

impl Node {
    pub(crate) fn journal_entry(
        &self,
        by: Option<&str>,
        action: &str,
        target: &str,
    ) -> JournalEntry {
        JournalEntry(by.map(|login| {
            (
                self.now(),
                login.to_owned(),
                action.to_owned(),
                target.to_owned(),
            )
        }))
    }

    /// Creates an account.
    pub async fn add_user(
        &self,
        login: &str,
        role: Role,
        password: &str,
        by: Option<&str>,
    ) -> Result<Account, AccountError> {
        check_login(login)?;
        check_password(password)?;
        let salt = self.random();
        let password = password.to_owned();
        let hash = blocking(move || hash_password(&password, salt)).await??;
        let login = login.to_owned();
        let now = self.now();
        let journal = self.journal_entry(by, "compte créé", &login);
        self.store()
            .call(move |conn| {
                let tx = conn.transaction()?;
                let exists: Option<i64> = tx
                    .query_row(
                        "SELECT user_id FROM staff_users WHERE login = ?1",
                        [&login],
                        |r| r.get(0),
                    )
                    .optional()?;
                if exists.is_some() {
                    return Ok(Err(AccountError::Exists(login)));
                }
                tx.execute(
                    "INSERT INTO staff_users (login, role, password_hash, active, created_at) VALUES (?1, ?2, ?3, 1, ?4)",
                    params![login, role.code(), hash, now],
                )?;
                let user_id = tx.last_insert_rowid();
                journal.write(&tx)?;
                tx.commit()?;
                Ok(Ok(Account {
                    user_id,
                    login,
                    role,
                    active: true,
                    created_at: now,
                }))
            })
            .await?
    }

    /// Every account, by login.
    pub async fn users(&self) -> Result<Vec<Account>, AccountError> {
        Ok(self
            .store()
            .call(|conn| {
                Ok(conn
                    .prepare(&format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM staff_users ORDER BY login"
                    ))?
                    .query_map([], read_account)?
                    .collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await?)
    }

    /// Enables or disables an account; disabling ends its sessions. The
    /// last active administrator stays.
    pub async fn set_user_active(
        &self,
        login: &str,
        active: bool,
        by: Option<&str>,
    ) -> Result<(), AccountError> {
        let login = login.to_owned();
        let journal = self.journal_entry(
            by,
            if active {
                "compte réactivé"
            } else {
                "compte désactivé"
            },
            &login,
        );
        self.store()
            .call(move |conn| {
                let tx = conn.transaction()?;
                let account = tx
                    .query_row(
                        &format!("SELECT {ACCOUNT_COLUMNS} FROM staff_users WHERE login = ?1"),
                        [&login],
                        read_account,
                    )
                    .optional()?;
                let Some(account) = account else {
                    return Ok(Err(AccountError::NotFound(login)));
                };
                if !active && account.role.is_admin() && active_admins_other_than(&tx, &login)? == 0
                {
                    return Ok(Err(AccountError::LastAdmin));
                }
                tx.execute(
                    "UPDATE staff_users SET active = ?2 WHERE login = ?1",
                    params![login, i64::from(active)],
                )?;
                if !active {
                    tx.execute(
                        "DELETE FROM staff_sessions WHERE user_id = ?1",
                        [account.user_id],
                    )?;
                }
                journal.write(&tx)?;
                tx.commit()?;
                Ok(Ok(()))
            })
            .await?
    }

    /// Sets a new password; the account's sessions end.
    pub async fn reset_password(
        &self,
        login: &str,
        password: &str,
        by: Option<&str>,
    ) -> Result<(), AccountError> {
        check_password(password)?;
        let salt = self.random();
        let password = password.to_owned();
        let hash = blocking(move || hash_password(&password, salt)).await??;
        let login = login.to_owned();
        let journal = self.journal_entry(by, "mot de passe réinitialisé", &login);
        self.store()
            .call(move |conn| {
                let tx = conn.transaction()?;
                let user_id: Option<i64> = tx
                    .query_row(
                        "SELECT user_id FROM staff_users WHERE login = ?1",
                        [&login],
                        |r| r.get(0),
                    )
                    .optional()?;
                let Some(user_id) = user_id else {
                    return Ok(Err(AccountError::NotFound(login)));
                };
                tx.execute(
                    "UPDATE staff_users SET password_hash = ?2 WHERE user_id = ?1",
                    params![user_id, hash],
                )?;
                tx.execute("DELETE FROM staff_sessions WHERE user_id = ?1", [user_id])?;
                journal.write(&tx)?;
                tx.commit()?;
                Ok(Ok(()))
            })
            .await?
    }

    /// Checks a login and password and opens a session; returns the token
    /// for the cookie. Unknown logins cost the same time as wrong passwords.
    pub async fn sign_in(
        &self,
        login: &str,
        password: &str,
    ) -> Result<(String, Session), AccountError> {
        let l = login.to_owned();
        let found = self
            .store()
            .call(move |conn| {
                Ok(conn
                    .query_row(
                        "SELECT user_id, role, password_hash, active FROM staff_users WHERE login = ?1",
                        [&l],
                        |r| {
                            Ok((
                                r.get::<_, i64>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, String>(2)?,
                                r.get::<_, i64>(3)? == 1,
                            ))
                        },
                    )
                    .optional()?)
            })
            .await?;
        // Unknown logins are checked against a hash of their own, so that
        // the time taken tells nothing.
        static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let hash = match &found {
            Some((_, _, h, _)) => h.clone(),
            None => DECOY
                .get_or_init(|| hash_password("decoy password", [7; 16]).unwrap_or_default())
                .clone(),
        };
        let password = password.to_owned();
        let verified = blocking(move || verify_password(&password, &hash)).await?;
        let Some((user_id, role, _, active)) = found else {
            return Err(AccountError::WrongCredentials);
        };
        if !verified || !active {
            return Err(AccountError::WrongCredentials);
        }
        let token = hex::encode(self.random::<32>());
        let csrf = hex::encode(self.random::<16>());
        let now = self.now();
        let session = Session {
            staff: Staff {
                user_id,
                login: login.to_owned(),
                role: Role::from_code(&role).unwrap_or(Role::Lecture),
            },
            csrf: csrf.clone(),
            expires_at: now + SESSION_SECONDS,
        };
        let hashed = token_hash(&token);
        let journal = self.journal_entry(Some(login), "connexion", "");
        self.store()
            .call(move |conn| {
                let tx = conn.transaction()?;
                tx.execute("DELETE FROM staff_sessions WHERE expires_at < ?1", [now])?;
                tx.execute(
                    "INSERT INTO staff_sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![hashed, user_id, csrf, now, now + SESSION_SECONDS],
                )?;
                journal.write(&tx)?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        Ok((token, session))
    }

    /// The session a cookie token opens, if it is current and its account
    /// active.
    pub async fn session(&self, token: &str) -> Result<Option<Session>, AccountError> {
        let hashed = token_hash(token);
        let now = self.now();
        Ok(self
            .store()
            .call(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT u.user_id, u.login, u.role, s.csrf, s.expires_at
                         FROM staff_sessions s JOIN staff_users u USING (user_id)
                         WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND u.active = 1",
                    )?
                    .query_row(params![hashed, now], |r| {
                        let role: String = r.get(2)?;
                        Ok(Session {
                            staff: Staff {
                                user_id: r.get(0)?,
                                login: r.get(1)?,
                                role: Role::from_code(&role).unwrap_or(Role::Lecture),
                            },
                            csrf: r.get(3)?,
                            expires_at: r.get(4)?,
                        })
                    })
                    .optional()?)
            })
            .await?)
    }

    /// Ends a session.
    pub async fn sign_out(&self, token: &str) -> Result<(), AccountError> {
        let hashed = token_hash(token);
        Ok(self
            .store()
            .call(move |conn| {
                conn.execute("DELETE FROM staff_sessions WHERE token_hash = ?1", [hashed])?;
                Ok(())
            })
            .await?)
    }

    /// The newest lines of the local journal.
    pub async fn journal(&self, limit: usize) -> Result<Vec<JournalLine>, AccountError> {
        Ok(self
            .store()
            .call(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT at, login, action, target FROM staff_journal ORDER BY entry_id DESC LIMIT ?1",
                    )?
                    .query_map([limit as i64], |r| {
                        Ok(JournalLine {
                            at: r.get(0)?,
                            login: r.get(1)?,
                            action: r.get(2)?,
                            target: r.get(3)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await?)
    }
}

/// Failed sign-ins per login and per address: after
/// [`Throttle::FREE_FAILURES`] in a row, each further attempt waits twice as
/// long as the last (from 1 s up to 15 min); a success clears the count.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Throttle {
    pub const FREE_FAILURES: u32 = 5;
    const MAX_WAIT: Duration = Duration::from_secs(15 * 60);

    /// How long `key` must still wait, if at all.
    pub fn wait(&self, key: &str) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (n, last) = failures.get(key)?;
        if *n < Self::FREE_FAILURES {
            return None;
        }
        let exp = (*n - Self::FREE_FAILURES).min(10);
        let wait = Duration::from_secs(1u64 << exp).min(Self::MAX_WAIT);
        let elapsed = last.elapsed();
        (elapsed < wait).then(|| wait - elapsed)
    }

    pub fn failed(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() > 10_000 {
            // Forget the oldest rather than grow without bound.
            failures.retain(|_, (_, at)| at.elapsed() < Self::MAX_WAIT);
        }
        let entry = failures
            .entry(key.to_owned())
            .or_insert((0, Instant::now()));
        entry.0 += 1;
        entry.1 = Instant::now();
    }

    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clps_model::CentreId;

    async fn node() -> Node {
        Node::in_memory(&CentreId::new("namur").unwrap(), 1_700_000_000, 7)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_account_signs_in_and_its_session_ends_when_disabled() {
        let node = node().await;
        node.add_user("admin", Role::Admin, "un mot de passe long", None)
            .await
            .unwrap();
        node.add_user(
            "marie",
            Role::Documentaliste,
            "mot de passe de marie",
            Some("admin"),
        )
        .await
        .unwrap();
        assert!(matches!(
            node.sign_in("marie", "mauvais mot de passe").await,
            Err(AccountError::WrongCredentials)
        ));
        assert!(matches!(
            node.sign_in("personne", "mot de passe de marie").await,
            Err(AccountError::WrongCredentials)
        ));
        let (token, session) = node
            .sign_in("marie", "mot de passe de marie")
            .await
            .unwrap();
        assert_eq!(session.staff.role, Role::Documentaliste);
        let again = node.session(&token).await.unwrap().unwrap();
        assert_eq!(again.csrf, session.csrf);
        assert!(node.session("autre").await.unwrap().is_none());
        node.set_user_active("marie", false, Some("admin"))
            .await
            .unwrap();
        assert!(node.session(&token).await.unwrap().is_none());
        assert!(matches!(
            node.sign_in("marie", "mot de passe de marie").await,
            Err(AccountError::WrongCredentials)
        ));
        assert!(matches!(
            node.set_user_active("admin", false, Some("admin")).await,
            Err(AccountError::LastAdmin)
        ));
        let journal = node.journal(10).await.unwrap();
        let actions: Vec<&str> = journal.iter().map(|l| l.action.as_str()).collect();
        assert_eq!(actions, ["compte désactivé", "connexion", "compte créé"]);
    }

    #[tokio::test]
    async fn weak_passwords_and_bad_logins_are_refused() {
        let node = node().await;
        assert!(matches!(
            node.add_user("marie", Role::Lecture, "court", None).await,
            Err(AccountError::WeakPassword)
        ));
        assert!(matches!(
            node.add_user("Marie Dupont", Role::Lecture, "assez long mot", None)
                .await,
            Err(AccountError::BadLogin(_))
        ));
        node.add_user("marie", Role::Lecture, "assez long mot", None)
            .await
            .unwrap();
        assert!(matches!(
            node.add_user("marie", Role::Lecture, "assez long mot", None)
                .await,
            Err(AccountError::Exists(_))
        ));
        node.reset_password("marie", "un autre mot de passe", None)
            .await
            .unwrap();
        assert!(node.sign_in("marie", "assez long mot").await.is_err());
        assert!(node.sign_in("marie", "un autre mot de passe").await.is_ok());
    }

    #[test]
    fn throttle_waits_after_five_failures_and_forgets_on_success() {
        let t = Throttle::default();
        for _ in 0..Throttle::FREE_FAILURES {
            assert!(t.wait("marie").is_none());
            t.failed("marie");
        }
        assert!(t.wait("marie").is_some());
        assert!(t.wait("autre").is_none());
        t.succeeded("marie");
        assert!(t.wait("marie").is_none());
    }
}
