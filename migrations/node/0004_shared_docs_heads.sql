-- Heads and chunk counts of the shared documents, readable without touching
-- their snapshots. In a shared_docs row the heads come after the snapshot
-- blob, so SQLite walked every overflow page of the snapshot (hundreds of kB
-- for a catalogue bucket) to read them: a serving node lists every
-- document's heads after each commit, which read the whole catalogue each
-- time. This covering index answers those reads by itself.
CREATE INDEX shared_docs_heads ON shared_docs (doc_id, heads, n_chunks);
