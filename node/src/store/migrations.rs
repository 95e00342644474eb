//! Numbered SQL migrations under `migrations/node/`, embedded at build time and
//! applied in order when the store opens. `PRAGMA user_version` records the
//! last one applied; each migration runs in its own transaction together with
//! the version bump, so a crash leaves the database at a whole version.

use rusqlite::Connection;

use super::APPLICATION_ID;

/// The migrations, in order. Migration `i` (0-based) brings the schema to
/// version `i + 1`.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_records.sql",
        include_str!("../../../migrations/node/0001_records.sql"),
    ),
    (
        "0002_shared_docs.sql",
        include_str!("../../../migrations/node/0002_shared_docs.sql"),
    ),
    (
        "0003_survey_answers.sql",
        include_str!("../../../migrations/node/0003_survey_answers.sql"),
    ),
    (
        "0004_shared_doc_heads.sql",
        include_str!("../../../migrations/node/0004_shared_doc_heads.sql"),
    ),
    (
        "0005_catalogue_aliases.sql",
        include_str!("../../../migrations/node/0005_catalogue_aliases.sql"),
    ),
    (
        "0006_blocked_docs.sql",
        include_str!("../../../migrations/node/0006_blocked_docs.sql"),
    ),
    (
        "0007_staff_accounts.sql",
        include_str!("../../../migrations/node/0007_staff_accounts.sql"),
    ),
    (
        "0008_catalogue_activity.sql",
        include_str!("../../../migrations/node/0008_catalogue_activity.sql"),
    ),
    (
        "0009_circulation.sql",
        include_str!("../../../migrations/node/0009_circulation.sql"),
    ),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(super) fn apply(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate() {
        let version = index as i64 + 1;
        if version <= current {
            continue;
        }
        tracing::info!(migration = name, "applying node migration");
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn migrations_apply_on_a_fresh_database_and_are_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply(&mut conn).unwrap();
        apply(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let app: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .unwrap();
        assert_eq!(app, APPLICATION_ID);
        for table in ["requests", "request_themes", "loans", "persons", "events"] {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{table}");
        }
        let check: String = conn
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .unwrap_or_else(|_| "ok".into());
        assert_eq!(check, "ok");
    }

    /// The reads a serving node makes after every commit, and the write of
    /// every stored change, never touch a snapshot: heads live in rows of
    /// their own.
    #[test]
    fn heads_are_read_without_the_snapshots() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply(&mut conn).unwrap();
        for sql in [crate::shared::LIST_HEADS, crate::shared::SELECT_HEADS] {
            let plan: Vec<String> = conn
                .prepare(&format!(
                    "EXPLAIN QUERY PLAN {}",
                    sql.replace("?1", "'catalogue/001'")
                ))
                .unwrap()
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter().all(|step| !step.contains("shared_docs ")),
                "{sql}: {plan:?}"
            );
        }
    }

    /// A database written before migration 0004 keeps every document's
    /// current heads.
    #[test]
    fn heads_move_to_their_own_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        for (_, sql) in &MIGRATIONS[..3] {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", 3).unwrap();
        tx.execute(
            "INSERT INTO shared_docs (doc_id, snapshot, heads, n_chunks) VALUES ('catalogue/001', X'00', 'ab', 3)",
            [],
        )
        .unwrap();
        tx.commit().unwrap();
        apply(&mut conn).unwrap();
        let row: (String, i64) = conn
            .query_row(crate::shared::SELECT_HEADS, ["catalogue/001"], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(row, ("ab".to_owned(), 3));
    }

    #[test]
    fn migration_files_are_numbered_in_order() {
        for (i, (name, _)) in MIGRATIONS.iter().enumerate() {
            assert!(name.starts_with(&format!("{:04}_", i + 1)), "{name}");
        }
    }
}
