-- The last change each record received from another centre, for the home
-- page's « reçu des autres centres ». Filled when a synced change is
-- projected; a whole document received at bootstrap is not « recent ».
-- Shared metadata only (centre, action, time): no staff, no person.
CREATE TABLE catalogue_activity (
    record_id TEXT PRIMARY KEY,
    centre    TEXT NOT NULL,
    action    TEXT NOT NULL,
    at        INTEGER NOT NULL
) STRICT;
CREATE INDEX catalogue_activity_at ON catalogue_activity (at);
