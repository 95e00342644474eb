-- The current heads and chunk count of each shared document, in rows of
-- their own. They change with every stored change, and updating them in
-- shared_docs made SQLite read and compare the whole row, snapshot
-- included (hundreds of kB for a catalogue bucket), at every change.
-- From this version on, shared_docs.heads and shared_docs.n_chunks describe
-- the snapshot (written at each compaction) and this table the document.
CREATE TABLE shared_doc_heads (
    doc_id   TEXT PRIMARY KEY REFERENCES shared_docs (doc_id) ON DELETE CASCADE,
    -- Current heads, hex, sorted, comma-separated.
    heads    TEXT NOT NULL,
    n_chunks INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;

INSERT INTO shared_doc_heads (doc_id, heads, n_chunks)
    SELECT doc_id, heads, n_chunks FROM shared_docs;

-- Migration 0004's covering index served the reads now made here.
DROP INDEX shared_docs_heads;
