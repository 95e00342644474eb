-- The hub's documents: one row per document with its last compacted
-- snapshot (Automerge::save) and the incremental chunks appended since
-- (raw change bytes), so that an accepted change costs one small insert and
-- loading is Automerge::load(snapshot) then load_incremental(chunk)...
CREATE TABLE documents (
    doc_id      TEXT PRIMARY KEY,
    space       TEXT NOT NULL,
    snapshot    BLOB NOT NULL,          -- empty until the first compaction
    heads       BLOB NOT NULL,          -- concatenated 32-byte change hashes
    n_chunks    INTEGER NOT NULL DEFAULT 0,
    n_bytes     INTEGER NOT NULL DEFAULT 0,  -- snapshot + chunks
    updated_at  INTEGER NOT NULL        -- unix seconds
) STRICT;

CREATE INDEX documents_space ON documents (space);

CREATE TABLE chunks (
    doc_id  TEXT NOT NULL REFERENCES documents (doc_id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (doc_id, seq)
) STRICT;

-- Refused changes, for the operators: who sent what, and why.
CREATE TABLE rejections (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    identity    TEXT NOT NULL,
    doc_id      TEXT NOT NULL,
    reason      TEXT NOT NULL
) STRICT;
