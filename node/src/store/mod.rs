//! The node's SQLite store, owned by one thread (the storage actor).
//!
//! Async code never touches a `rusqlite::Connection`: it sends a closure to the
//! actor thread and awaits the reply on a oneshot channel. The thread runs the
//! closures one after the other, so every closure sees a consistent database
//! and a closure that opens a transaction writes all or nothing.
//!
//! Opening the store checks, before anything is written, that the file is a
//! node database (SQLite `application_id`), that its schema is not newer than
//! this binary knows, and that no other process holds a write lock; then it
//! applies the embedded migrations.

mod migrations;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

pub use migrations::{MIGRATIONS, SCHEMA_VERSION};

/// The database file inside a node's data directory.
pub const DB_FILE: &str = "node.sqlite";

/// `PRAGMA application_id` of a node database: "CLPS" in ASCII.
pub const APPLICATION_ID: i32 = 0x434c_5053;

/// How long a writer waits for another process's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("le répertoire de données {0} n'existe pas")]
    MissingDir(PathBuf),
    #[error(
        "le répertoire {0} n'est pas initialisé : lancez d'abord « clps-node --data {0} init --centre ID »"
    )]
    NotInitialised(PathBuf),
    #[error("le répertoire {0} est déjà initialisé pour le centre {1}")]
    AlreadyInitialised(PathBuf, String),
    #[error("{0} n'est pas une base de données de nœud CLPS")]
    Foreign(PathBuf),
    #[error(
        "la base {path} a été écrite par une version plus récente (schéma {found}, cette version connaît le schéma {known}) : mettez clps-node à jour"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("la base {0} est verrouillée par un autre processus ; réessayez quand il aura terminé")]
    Locked(PathBuf),
    #[error(
        "le disque qui porte {0} est plein : rien n'a été écrit ; libérez de la place puis recommencez"
    )]
    DiskFull(PathBuf),
    #[error(
        "la base {0} ne peut pas être écrite (disque ou répertoire en lecture seule) : rien n'a été écrit ; rendez-la inscriptible puis recommencez"
    )]
    ReadOnly(PathBuf),
    #[error(
        "le disque qui porte {0} refuse l'accès (plein, en lecture seule ou défaillant) : rien n'a été écrit ; libérez de la place ou vérifiez le disque puis recommencez"
    )]
    DiskIo(PathBuf),
    #[error("erreur SQLite : {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("le fil de stockage s'est arrêté")]
    Closed,
    #[error("{0}")]
    Invalid(String),
    /// A shared document refused an edit (its rules are the model's).
    #[error("document partagé : {0}")]
    Doc(#[from] clps_model::docs::DocError),
    #[error(transparent)]
    Record(#[from] crate::records::RecordError),
}

impl From<crate::records::OpError> for StoreError {
    fn from(e: crate::records::OpError) -> Self {
        match e {
            crate::records::OpError::Record(r) => StoreError::Record(r),
            crate::records::OpError::Sqlite(s) => StoreError::Sqlite(s),
        }
    }
}

impl StoreError {
    /// Maps SQLite's busy/locked codes to [`StoreError::Locked`].
    fn from_sqlite(path: &Path, err: rusqlite::Error) -> StoreError {
        match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Locked(path.to_owned())
            }
            Some(rusqlite::ErrorCode::NotADatabase) => StoreError::Foreign(path.to_owned()),
            // SQLite rolls the transaction back in both cases: the file stays
            // as it was, and the same command succeeds once space returns.
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::DiskFull(path.to_owned()),
            Some(rusqlite::ErrorCode::ReadOnly) => StoreError::ReadOnly(path.to_owned()),
            // The file is there but cannot be opened for writing (a
            // read-only mount, the WAL or its shared memory not creatable).
            Some(rusqlite::ErrorCode::CannotOpen)
                if path.is_file()
                    && std::fs::OpenOptions::new().append(true).open(path).is_err() =>
            {
                StoreError::ReadOnly(path.to_owned())
            }
            // An I/O error (ENOSPC on a WAL or shared-memory write, EROFS...)
            // does not say which: name the likely causes.
            Some(rusqlite::ErrorCode::SystemIoFailure) => StoreError::DiskIo(path.to_owned()),
            _ => StoreError::Sqlite(err),
        }
    }
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Handle to the storage actor. Cheap to clone; the thread stops when the
/// last handle is dropped.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    path: PathBuf,
}

/// How to open a data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The directory must hold an initialised node database.
    Existing,
    /// Create the database (the directory is created if needed).
    Create,
}

impl Store {
    /// Opens the node database of `data_dir`, applying pending migrations.
    pub fn open(data_dir: &Path, mode: OpenMode) -> Result<Store, StoreError> {
        let path = data_dir.join(DB_FILE);
        match mode {
            OpenMode::Existing => {
                if !data_dir.is_dir() {
                    return Err(StoreError::MissingDir(data_dir.to_owned()));
                }
                if !path.is_file() {
                    return Err(StoreError::NotInitialised(data_dir.to_owned()));
                }
            }
            OpenMode::Create => {
                // The directory holds personal data: only its owner may
                // enter it.
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(data_dir)
                    .map_err(|_| {
                        StoreError::Invalid(format!(
                            "impossible de créer le répertoire de données {}",
                            data_dir.display()
                        ))
                    })?;
            }
        }
        let flags = match mode {
            OpenMode::Existing => OpenFlags::SQLITE_OPEN_READ_WRITE,
            OpenMode::Create => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags)
            .map_err(|e| StoreError::from_sqlite(&path, e))?;
        if mode == OpenMode::Create {
            private_file(&path);
        }
        prepare(conn, &path, mode).map(|conn| Store::spawn(conn, path))
    }

    /// A fresh in-memory database with every migration applied, for tests.
    pub fn in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory()?;
        let path = PathBuf::from(":memory:");
        prepare(conn, &path, OpenMode::Create).map(|conn| Store::spawn(conn, path))
    }

    fn spawn(mut conn: Connection, path: PathBuf) -> Store {
        let (jobs, inbox) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("clps-store".into())
            .spawn(move || {
                for job in inbox {
                    job(&mut conn);
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot spawn storage thread: {e}"));
        Store { jobs, path }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the storage thread and returns its result.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let path = self.path.clone();
        let job: Job = Box::new(move |conn| {
            let result = f(conn).map_err(|e| match e {
                StoreError::Sqlite(err) => StoreError::from_sqlite(&path, err),
                other => other,
            });
            // The caller may have gone away; nothing to do then.
            let _ = reply.send(result);
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// Copies the live database to `target` with SQLite's online backup, page
/// by page, while the node keeps working; the copy is then checked with
/// `PRAGMA integrity_check`. The target must not exist yet.
/// An operating-system error in French, for staff.
pub fn io_error_fr(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => "fichier ou répertoire introuvable",
        ErrorKind::PermissionDenied => "accès refusé",
        ErrorKind::AlreadyExists => "le fichier existe déjà",
        ErrorKind::StorageFull => "le disque est plein",
        ErrorKind::ReadOnlyFilesystem => "le disque est en lecture seule",
        ErrorKind::AddrInUse => "l'adresse est déjà utilisée par un autre programme",
        ErrorKind::AddrNotAvailable => "cette adresse n'appartient pas à cette machine",
        _ => "erreur du système",
    }
}

/// Makes a file of personal data readable by its owner only (best effort:
/// a file system without Unix modes keeps its own rules).
pub fn private_file(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

pub fn backup(conn: &Connection, target: &Path) -> Result<u64, StoreError> {
    if target.exists() {
        return Err(StoreError::Invalid(format!(
            "{} existe déjà : choisissez un nouveau fichier de sauvegarde",
            target.display()
        )));
    }
    let tmp = target.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    {
        let mut dst = Connection::open(&tmp)?;
        private_file(&tmp);
        let backup = rusqlite::backup::Backup::new(conn, &mut dst)?;
        backup.run_to_completion(256, Duration::from_millis(5), None)?;
    }
    let check: String =
        Connection::open(&tmp)?.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        let _ = std::fs::remove_file(&tmp);
        return Err(StoreError::Invalid(format!(
            "sauvegarde invalide : {check}"
        )));
    }
    std::fs::rename(&tmp, target).map_err(|e| {
        StoreError::Invalid(format!("impossible d'écrire {} : {e}", target.display()))
    })?;
    Ok(std::fs::metadata(target).map(|m| m.len()).unwrap_or(0))
}

/// Checks the file, sets the pragmas and migrates, in that order, so that a
/// foreign or newer database is refused before anything is written to it.
fn prepare(mut conn: Connection, path: &Path, mode: OpenMode) -> Result<Connection, StoreError> {
    let fail = |e| StoreError::from_sqlite(path, e);
    conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(fail)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(fail)?;
    let is_empty = app_id == 0 && version == 0 && {
        let n: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(fail)?;
        n == 0
    };
    if !is_empty && app_id != APPLICATION_ID {
        return Err(StoreError::Foreign(path.to_owned()));
    }
    if is_empty && mode == OpenMode::Existing {
        return Err(StoreError::NotInitialised(
            path.parent().unwrap_or(path).to_owned(),
        ));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    if path.as_os_str() != ":memory:" {
        // WAL lets readers (stats, status) run while the node writes.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(fail)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!("journal mode is {mode}, not wal");
        }
    }
    // A page cache of 64 MiB (SQLite's default is 2 MiB): with the whole
    // catalogue projected (about 1 GB at 200,000 records) the B-tree and
    // full-text index pages a write walks are read again from the file at
    // every insert otherwise; a bootstrap spent a third of its time there.
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;",
    )
    .map_err(fail)?;
    // Write transactions take the write lock when they begin: a deferred
    // transaction that read first could not upgrade once the sync link (a
    // second process: `clps-node serve`) had committed, and would fail at
    // once instead of waiting its turn.
    conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
    migrations::apply(&mut conn).map_err(fail)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn refuses_foreign_and_newer_databases_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        // A foreign SQLite file.
        {
            let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
            c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
                .unwrap();
        }
        let before = std::fs::read(dir.path().join(DB_FILE)).unwrap();
        let err = Store::open(dir.path(), OpenMode::Existing).err().unwrap();
        assert!(matches!(err, StoreError::Foreign(_)), "{err}");
        assert_eq!(std::fs::read(dir.path().join(DB_FILE)).unwrap(), before);

        // A node database from a newer schema.
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), OpenMode::Create).unwrap());
        {
            let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
            c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        let err = Store::open(dir.path(), OpenMode::Existing).err().unwrap();
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
        assert!(err.to_string().contains("plus récente"));

        // A file that is not SQLite at all.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), b"not a database, just text....").unwrap();
        let err = Store::open(dir.path(), OpenMode::Existing).err().unwrap();
        assert!(matches!(err, StoreError::Foreign(_)), "{err}");
    }

    #[tokio::test]
    async fn missing_directory_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let err = Store::open(&dir.path().join("nope"), OpenMode::Existing)
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::MissingDir(_)));
        let err = Store::open(dir.path(), OpenMode::Existing).err().unwrap();
        assert!(matches!(err, StoreError::NotInitialised(_)));
    }

    #[tokio::test]
    async fn a_locked_database_is_reported_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), OpenMode::Create).unwrap();
        // Do not wait the full production timeout in a test.
        store
            .call(|c| Ok(c.busy_timeout(Duration::from_millis(200))?))
            .await
            .unwrap();
        // Another process holds the write lock.
        let other = Connection::open(dir.path().join(DB_FILE)).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let err = store
            .call(|c| {
                c.execute("INSERT INTO meta VALUES ('k', 'v')", [])?;
                Ok(())
            })
            .await
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::Locked(_)), "{err}");
        other.execute_batch("ROLLBACK").unwrap();
    }
}
