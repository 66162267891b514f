/*
 * rt/pg.h: small libpq helpers and the schema migration runner shared by the
 * services that own PostgreSQL tables (chat-history, crdt-merge).
 *
 * Migrations are files `NNNN_name.sql` in one directory, applied in version
 * order, each in its own transaction, under a session advisory lock, and
 * recorded in the table rt_schema_migrations: several replicas may start at
 * once, and the first one applies what is missing while the others wait.
 *
 * A PGconn is used by one thread at a time; these helpers hold no state.
 */
#ifndef RT_PG_H
#define RT_PG_H

#include "rt/common.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* Any thread.  Connects with a 5 s connect timeout and TCP keepalives; returns an
 * owned connection in *out, or RT_EUNAVAIL (logged) when the server cannot be reached
 * or refuses.  Borrows conninfo (a URL or key=value string). */
int rt_pg_connect(const char *conninfo, PGconn **out);

/* Finds the migrations directory, writing its path into out: $RT_MIGRATIONS_DIR if
 * set (it must exist), else "migrations" in the working directory, else
 * <directory of the running binary>/../../migrations (build/bin/x run from anywhere).
 * RT_ENOTFOUND if none exists or out is too small. */
int rt_pg_migrations_dir(char *out, size_t size);

/* Applies every migration of `dir` not yet recorded, under the advisory lock.
 * Returns RT_OK, RT_EUNAVAIL (the connection failed: retry later), RT_EIO (an unreadable
 * file) or RT_EINVAL (a bad file name or a migration's SQL failed).  Borrows both.
 * *applied (optional) gets the number of migrations applied by this call. */
int rt_pg_migrate(PGconn *conn, const char *dir, int *applied);

/* What a service runs at start and `<service> migrate` runs alone: finds the migrations
 * directory, then connects and migrates, retrying for up to wait_ms while PostgreSQL is
 * not up yet (or until *stop becomes non-zero).  Logs what it did; returns as rt_pg_migrate
 * (RT_ENOTFOUND: no migrations directory).  Main thread. */
int rt_pg_migrate_at_start(const char *database_url, int64_t wait_ms, volatile int *stop);

/* Runs one parameterless command (BEGIN, COMMIT, ...); RT_OK, or RT_EUNAVAIL when the
 * connection is lost, else RT_EINVAL.  Logs failures with `what`. */
int rt_pg_exec(PGconn *conn, const char *sql, const char *what);

/* Maps a failed result to RT_EUNAVAIL (connection lost or server shutting down),
 * RT_ESTATE (deadlock or serialization failure: retry the transaction) or RT_EINVAL
 * (anything else), and logs it with `what`.  Borrows res (may be NULL). */
int rt_pg_error(PGconn *conn, const PGresult *res, const char *what);

/* A one-dimensional array parameter in PostgreSQL's binary format (send it with
 * format 1 and its length): buf starts empty, the first element also writes the
 * header, every element counts itself in it.  Binary, so that the server copies
 * elements instead of parsing an array literal (5 % of its CPU on a durable
 * publish load) and bytes travel as they are, not as hex.  All the elements of
 * one array have one type; an array needs at least one. */
void rt_pg_array_add_text(rt_buf_t *buf, const char *s, size_t len);
void rt_pg_array_add_bytea(rt_buf_t *buf, const uint8_t *data, size_t len);
void rt_pg_array_add_int(rt_buf_t *buf, int64_t v);

/* Reads a binary-format column: int8 (or int4) as a signed integer. */
int64_t rt_pg_get_int(const PGresult *res, int row, int col);

#endif
