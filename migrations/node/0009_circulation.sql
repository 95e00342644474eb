-- Circulation: the centre's physical copies (exemplaires) of catalogue
-- records, loans of those copies to borrowers, and reservations.
-- Everything here stays on the node. The shared catalogue only carries, in
-- the centre's holding, how many copies it has and whether one is free.

CREATE TABLE copies (
    id         INTEGER PRIMARY KEY,
    record_id  TEXT NOT NULL,
    -- Barcode or inventory number, as printed on the copy.
    barcode    TEXT NOT NULL UNIQUE CHECK (length(barcode) > 0),
    shelf_mark TEXT NOT NULL DEFAULT '',
    state      TEXT NOT NULL DEFAULT 'bon'
               CHECK (state IN ('neuf', 'bon', 'use', 'abime', 'perdu')),
    note       TEXT NOT NULL DEFAULT '',
    added_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX copies_record ON copies (record_id);

-- A loan of a catalogued copy names it; older loans keep their free-text
-- `item_ref` only (legacy loans, still counted).
ALTER TABLE loans ADD COLUMN copy_id INTEGER REFERENCES copies (id) ON DELETE SET NULL;
ALTER TABLE loans ADD COLUMN person_id INTEGER REFERENCES persons (id) ON DELETE SET NULL;
ALTER TABLE loans ADD COLUMN renewals INTEGER NOT NULL DEFAULT 0;
ALTER TABLE loans ADD COLUMN note TEXT NOT NULL DEFAULT '';
-- At most one open loan per copy.
CREATE UNIQUE INDEX loans_open_copy ON loans (copy_id) WHERE returned_date IS NULL AND copy_id IS NOT NULL;
CREATE INDEX loans_due ON loans (due_date) WHERE returned_date IS NULL;

-- A queue per record: who waits for a copy.
CREATE TABLE reservations (
    id              INTEGER PRIMARY KEY,
    record_id       TEXT NOT NULL,
    organisation_id INTEGER REFERENCES organisations (id) ON DELETE SET NULL,
    person_id       INTEGER REFERENCES persons (id) ON DELETE SET NULL,
    created_at      INTEGER NOT NULL,
    -- Set when the reservation ends: lent to them, or cancelled.
    closed_at       INTEGER,
    note            TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX reservations_open ON reservations (record_id, created_at) WHERE closed_at IS NULL;
