-- 0002_docs.sql: Yjs documents of the crdt-merge service.
--
-- A document's state is its snapshot (the engine's encodeStateAsUpdate, V1)
-- merged with every row of its update log.  crdt-merge appends each applied
-- update to the log in group commits, and now and then replaces snapshot plus
-- log by a new snapshot in one transaction (compaction).  Loading applies the
-- snapshot, then the log in id order (any order converges: Yjs updates commute).
CREATE TABLE doc_snapshots (
    doc text PRIMARY KEY,
    state bytea NOT NULL,
    updated_ms bigint NOT NULL
);

CREATE TABLE doc_updates (
    id bigserial PRIMARY KEY,
    doc text NOT NULL,
    data bytea NOT NULL
);

CREATE INDEX doc_updates_doc ON doc_updates (doc, id);
