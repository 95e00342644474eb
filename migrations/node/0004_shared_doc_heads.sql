-- The current heads and chunk count of each shared document, in rows of
-- their own. In a shared_docs row they come after the snapshot blob
-- (hundreds of kB for a catalogue bucket): SQLite walked the snapshot's
-- overflow pages to read them (a serving node lists every document's heads
-- after each commit) and read and compared the whole row to update them at
-- every stored change.
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
