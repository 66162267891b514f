-- 0003_doc_storage.sql: cheaper storage of the Yjs update log.
--
-- A log row is one turn's merged changes of a document, a few KiB during a
-- fast stream of edits, written once and read only when the document loads.
-- PostgreSQL compresses (pglz) every value of a row over about 2 KiB, which
-- cost a fifth of its CPU under an editing replay: such rows now stay inline
-- and uncompressed up to a page, and larger values (snapshots, big pastes)
-- are compressed with lz4, several times cheaper than pglz.
ALTER TABLE doc_updates SET (toast_tuple_target = 8160);
ALTER TABLE doc_updates ALTER COLUMN data SET COMPRESSION lz4;
ALTER TABLE doc_snapshots ALTER COLUMN state SET COMPRESSION lz4;
