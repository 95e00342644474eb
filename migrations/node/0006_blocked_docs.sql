-- Shared documents the hub refused at the last sync, with its reason: what
-- `status` shows and `sync` reports until a sync goes through.
CREATE TABLE blocked_docs (
    doc_id TEXT PRIMARY KEY,
    code   TEXT NOT NULL,
    reason TEXT NOT NULL,
    since  INTEGER NOT NULL
) STRICT;
