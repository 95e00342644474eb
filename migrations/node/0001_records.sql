-- The centre's own records. Nothing in these tables is ever written into a
-- shared document: persons, requests, loans and notes stay on the node.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Shared code lists as seeded from the embedded vocabularies (versioned seed
-- data). Records are checked against them before they are written.
CREATE TABLE vocab (
    list     TEXT NOT NULL,
    code     TEXT NOT NULL,
    label    TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (list, code)
) STRICT;

CREATE TABLE organisations (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL CHECK (length(name) > 0),
    org_type TEXT NOT NULL DEFAULT '',
    sector   TEXT NOT NULL,
    commune  TEXT NOT NULL DEFAULT ''
) STRICT;

-- Contacts. Private: never aggregated, never shared.
CREATE TABLE persons (
    id              INTEGER PRIMARY KEY,
    first_name      TEXT NOT NULL,
    last_name       TEXT NOT NULL,
    email           TEXT,
    phone           TEXT,
    organisation_id INTEGER REFERENCES organisations (id) ON DELETE SET NULL
) STRICT;

-- Demandes.
CREATE TABLE requests (
    id              INTEGER PRIMARY KEY,
    date            TEXT NOT NULL CHECK (date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    service_type    TEXT NOT NULL,
    sector          TEXT NOT NULL,
    profession      TEXT NOT NULL,
    contact_mode    TEXT NOT NULL,
    organisation_id INTEGER REFERENCES organisations (id) ON DELETE SET NULL,
    person_id       INTEGER REFERENCES persons (id) ON DELETE SET NULL,
    note            TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX requests_date ON requests (date);

CREATE TABLE request_themes (
    request_id INTEGER NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    theme      TEXT NOT NULL,
    PRIMARY KEY (request_id, theme)
) STRICT, WITHOUT ROWID;

-- Mises à disposition (loans of physical supports).
CREATE TABLE loans (
    id              INTEGER PRIMARY KEY,
    item_ref        TEXT NOT NULL CHECK (length(item_ref) > 0),
    document_type   TEXT NOT NULL,
    theme           TEXT,
    organisation_id INTEGER REFERENCES organisations (id) ON DELETE SET NULL,
    out_date        TEXT NOT NULL,
    due_date        TEXT NOT NULL,
    returned_date   TEXT,
    CHECK (due_date >= out_date),
    CHECK (returned_date IS NULL OR returned_date >= out_date)
) STRICT;
CREATE INDEX loans_out_date ON loans (out_date);

-- Accompagnements méthodologiques.
CREATE TABLE accompaniments (
    id         INTEGER PRIMARY KEY,
    title      TEXT NOT NULL,
    scheme     TEXT NOT NULL CHECK (scheme IN ('general', 'assuetudes', 'evras', 'covid')),
    commune    TEXT NOT NULL DEFAULT '',
    start_date TEXT NOT NULL,
    organisation_id INTEGER REFERENCES organisations (id) ON DELETE SET NULL,
    note       TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE TABLE accompaniment_themes (
    accompaniment_id INTEGER NOT NULL REFERENCES accompaniments (id) ON DELETE CASCADE,
    theme            TEXT NOT NULL,
    PRIMARY KEY (accompaniment_id, theme)
) STRICT, WITHOUT ROWID;

CREATE TABLE accompaniment_axes (
    accompaniment_id INTEGER NOT NULL REFERENCES accompaniments (id) ON DELETE CASCADE,
    axis             TEXT NOT NULL,
    PRIMARY KEY (accompaniment_id, axis)
) STRICT, WITHOUT ROWID;

-- Formations, ateliers d'échange, concertations.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('formation', 'atelier', 'concertation')),
    title      TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date   TEXT NOT NULL,
    CHECK (end_date >= start_date)
) STRICT;

-- Organisers: centre ids (co-organised events name every centre) or partner names.
CREATE TABLE event_organisers (
    event_id  INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    organiser TEXT NOT NULL,
    PRIMARY KEY (event_id, organiser)
) STRICT, WITHOUT ROWID;

CREATE TABLE event_participants (
    event_id   INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    profession TEXT NOT NULL,
    n          INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (event_id, profession)
) STRICT, WITHOUT ROWID;
