-- The node's copies of the shared Automerge documents, and their projection
-- into tables and a full-text index for local search.

-- One row per shared document: the last compacted snapshot (Automerge save()).
CREATE TABLE shared_docs (
    doc_id   TEXT PRIMARY KEY,
    snapshot BLOB NOT NULL,
    -- Current heads, hex, sorted, comma-separated.
    heads    TEXT NOT NULL,
    n_chunks INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Incremental saves since the snapshot, applied in order on load.
CREATE TABLE shared_doc_chunks (
    doc_id TEXT NOT NULL REFERENCES shared_docs (doc_id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    bytes  BLOB NOT NULL,
    PRIMARY KEY (doc_id, seq)
) STRICT;

-- Changes made on this node that the hub has not acknowledged yet.
CREATE TABLE pending_changes (
    doc_id TEXT NOT NULL,
    hash   TEXT NOT NULL,
    PRIMARY KEY (doc_id, hash)
) STRICT, WITHOUT ROWID;

-- Projection of the catalogue: one row per record, kept up to date from the
-- records each change touches (never rebuilt per change).
CREATE TABLE catalogue (
    record_id      TEXT PRIMARY KEY,
    bucket         INTEGER NOT NULL,
    title          TEXT NOT NULL,
    doc_type       TEXT NOT NULL,
    creator        TEXT NOT NULL,
    publisher      TEXT NOT NULL,
    year           INTEGER,
    age_min        INTEGER,
    age_max        INTEGER,
    description    TEXT NOT NULL,
    conditions     TEXT NOT NULL,
    merged_into    TEXT,
    created_by     TEXT,
    last_edited_by TEXT
) STRICT;
CREATE INDEX catalogue_doc_type ON catalogue (doc_type);
-- Listing by title (a search without text) walks this index and stops once
-- a page is full, instead of sorting the whole catalogue; doc_type is in it
-- so that the type filter is checked without reading the row.
CREATE INDEX catalogue_title ON catalogue (title, record_id, doc_type)
    WHERE merged_into IS NULL;

CREATE TABLE catalogue_themes (
    record_id TEXT NOT NULL,
    theme     TEXT NOT NULL,
    PRIMARY KEY (theme, record_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX catalogue_themes_record ON catalogue_themes (record_id);

CREATE TABLE catalogue_publics (
    record_id TEXT NOT NULL,
    public    TEXT NOT NULL,
    PRIMARY KEY (public, record_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX catalogue_publics_record ON catalogue_publics (record_id);

CREATE TABLE catalogue_holdings (
    record_id    TEXT NOT NULL,
    centre       TEXT NOT NULL,
    copies       INTEGER NOT NULL,
    shelf_mark   TEXT NOT NULL,
    availability TEXT NOT NULL,
    PRIMARY KEY (centre, record_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX catalogue_holdings_record ON catalogue_holdings (record_id);

-- Accent-insensitive full-text index: "assuetudes" finds "Assuétudes".
-- The rowid is the catalogue row's rowid.
CREATE VIRTUAL TABLE catalogue_fts USING fts5 (
    title, creator, publisher, description, themes,
    tokenize = 'unicode61 remove_diacritics 2'
);
