-- Staff accounts of the node's web application, their sessions, and the
-- local journal of who did what. None of it ever leaves the node: shared
-- documents name centres, never staff.
CREATE TABLE staff_users (
    user_id       INTEGER PRIMARY KEY,
    login         TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'documentaliste', 'lecture')),
    -- argon2id, PHC string format.
    password_hash TEXT NOT NULL,
    active        INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at    INTEGER NOT NULL
) STRICT;

-- A session is known by the SHA-256 of its cookie; the cookie itself is
-- never stored.
CREATE TABLE staff_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES staff_users (user_id) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX staff_sessions_user ON staff_sessions (user_id);

CREATE TABLE staff_journal (
    entry_id INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    login    TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL
) STRICT;
CREATE INDEX staff_journal_at ON staff_journal (at);
