/* pg.c: libpq connection and error helpers, array literals, the migration runner. */
#include "rt/pg.h"
#include "rt/log.h"

#include <ctype.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* pg_advisory_lock key of the migration runner: "rtsync.m" as a big-endian int64. */
#define MIGRATION_LOCK_KEY "8247345397045259885"
#define MAX_MIGRATIONS 1000

/* One line of libpq's message, fit for a quoted log field. */
static void log_text(char *out, size_t size, const char *msg)
{
    snprintf(out, size, "%s", msg);
    out[strcspn(out, "\n")] = '\0';
    for (char *p = out; *p; p++)
        if (*p == '"')
            *p = '\'';
}

int rt_pg_connect(const char *conninfo, PGconn **out)
{
    static const char *const keys[] = {"dbname",           "connect_timeout",  "keepalives_idle", "keepalives_interval",
                                       "keepalives_count", "application_name", "options",         NULL};
    /* an idle transaction of a stopped (SIGSTOP) process must not hold its locks for ever */
    const char *values[] = {conninfo,
                            "5",
                            "10",
                            "5",
                            "3",
                            "rtsync",
                            "-c client_min_messages=warning -c idle_in_transaction_session_timeout=30s",
                            NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (PQstatus(conn) != CONNECTION_OK) {
        char msg[256];
        log_text(msg, sizeof(msg), PQerrorMessage(conn));
        RT_LOG_WARN("pg_connect_failed", "error=\"%s\"", msg);
        PQfinish(conn);
        return RT_EUNAVAIL;
    }
    *out = conn;
    return RT_OK;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int copy_path(char *out, size_t size, const char *path)
{
    if ((size_t)snprintf(out, size, "%s", path) >= size)
        return RT_ENOTFOUND;
    return RT_OK;
}

int rt_pg_migrations_dir(char *out, size_t size)
{
    const char *env = getenv("RT_MIGRATIONS_DIR");
    if (env != NULL && *env != '\0')
        return is_dir(env) ? copy_path(out, size, env) : RT_ENOTFOUND;
    if (is_dir("migrations"))
        return copy_path(out, size, "migrations");
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return RT_ENOTFOUND;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return RT_ENOTFOUND;
    *slash = '\0';
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/../../migrations", exe);
    return is_dir(path) ? copy_path(out, size, path) : RT_ENOTFOUND;
}

int rt_pg_error(PGconn *conn, const PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char msg[256];
    log_text(msg, sizeof(msg), res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
    int err = RT_EINVAL;
    if (PQstatus(conn) != CONNECTION_OK || state == NULL || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "57P", 3) == 0)
        err = RT_EUNAVAIL; /* connection exception, admin shutdown, cannot connect now */
    else if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        err = RT_ESTATE;
    RT_LOG_WARN("pg_error", "what=%s sqlstate=%s error=\"%s\"", what, state ? state : "-", msg);
    return err;
}

int rt_pg_exec(PGconn *conn, const char *sql, const char *what)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int err = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? RT_OK : rt_pg_error(conn, res, what);
    PQclear(res);
    return err;
}

/* PostgreSQL's type oids of the elements (pg_type.dat). */
enum { OID_BYTEA = 17, OID_INT8 = 20, OID_TEXT = 25 };
/* Header: ndim, has-nulls flag, element type, then (length, lower bound) per dimension. */
enum { ARRAY_HEADER = 20, ARRAY_LENGTH_AT = 12 };

static void put_be32(uint8_t *p, uint32_t v)
{
    v = htobe32(v);
    memcpy(p, &v, 4);
}

/* Appends one element's length and bytes, after the header if it is the first. */
static void array_add(rt_buf_t *buf, uint32_t oid, const void *data, size_t len)
{
    if (buf->len == 0) {
        uint8_t *h = rt_buf_reserve(buf, ARRAY_HEADER);
        put_be32(h, 1);
        put_be32(h + 4, 0);
        put_be32(h + 8, oid);
        put_be32(h + 12, 0);
        put_be32(h + 16, 1);
        buf->len = ARRAY_HEADER;
    }
    uint32_t count;
    memcpy(&count, buf->data + ARRAY_LENGTH_AT, 4);
    put_be32(buf->data + ARRAY_LENGTH_AT, be32toh(count) + 1);
    put_be32(rt_buf_reserve(buf, 4), (uint32_t)len);
    buf->len += 4;
    rt_buf_append(buf, data, len);
}

void rt_pg_array_add_text(rt_buf_t *buf, const char *s, size_t len)
{
    array_add(buf, OID_TEXT, s, len);
}

void rt_pg_array_add_bytea(rt_buf_t *buf, const uint8_t *data, size_t len)
{
    array_add(buf, OID_BYTEA, data, len);
}

void rt_pg_array_add_int(rt_buf_t *buf, int64_t v)
{
    uint64_t be = htobe64((uint64_t)v);
    array_add(buf, OID_INT8, &be, 8);
}

int64_t rt_pg_get_int(const PGresult *res, int row, int col)
{
    const char *v = PQgetvalue(res, row, col);
    if (PQgetlength(res, row, col) == 4) {
        uint32_t x;
        memcpy(&x, v, 4);
        return (int32_t)be32toh(x);
    }
    uint64_t x = 0;
    memcpy(&x, v, PQgetlength(res, row, col) == 8 ? 8 : 0);
    return (int64_t)be64toh(x);
}

/* ---- migrations ---------------------------------------------------------------- */

typedef struct migration {
    int version;
    char name[256];
} migration_t;

/* "NNNN_name.sql" with a name of [A-Za-z0-9_-]; returns the version or -1. */
static int migration_version(const char *file)
{
    size_t len = strlen(file);
    if (len < 10 || len >= 256 || strcmp(file + len - 4, ".sql") != 0 || file[4] != '_')
        return -1;
    for (int i = 0; i < 4; i++)
        if (!isdigit((unsigned char)file[i]))
            return -1;
    for (size_t i = 5; i < len - 4; i++)
        if (!isalnum((unsigned char)file[i]) && file[i] != '_' && file[i] != '-')
            return -1;
    return atoi(file);
}

static int cmp_migration(const void *a, const void *b)
{
    return ((const migration_t *)a)->version - ((const migration_t *)b)->version;
}

/* Lists dir's migrations sorted by version; *out is owned by the caller. */
static int migrations_list(const char *dir, migration_t **out, size_t *count)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        RT_LOG_ERROR("migrations_dir_unreadable", "dir=%s error=\"%s\"", dir, strerror(errno));
        return RT_EIO;
    }
    migration_t *list = rt_xcalloc(MAX_MIGRATIONS, sizeof(*list));
    size_t n = 0;
    int err = RT_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && err == RT_OK) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 4 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue; /* READMEs and editor files are not migrations */
        int version = migration_version(e->d_name);
        if (version < 0 || n == MAX_MIGRATIONS) {
            RT_LOG_ERROR("migration_bad_name", "file=%s want=NNNN_name.sql", e->d_name);
            err = RT_EINVAL;
            break;
        }
        list[n].version = version;
        snprintf(list[n].name, sizeof(list[n].name), "%s", e->d_name);
        n++;
    }
    closedir(d);
    qsort(list, n, sizeof(*list), cmp_migration);
    for (size_t i = 1; i < n && err == RT_OK; i++) {
        if (list[i].version == list[i - 1].version) {
            RT_LOG_ERROR("migration_duplicate_version", "a=%s b=%s", list[i - 1].name, list[i].name);
            err = RT_EINVAL;
        }
    }
    if (err != RT_OK) {
        free(list);
        return err;
    }
    *out = list;
    *count = n;
    return RT_OK;
}

static int read_file(const char *path, rt_buf_t *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        RT_LOG_ERROR("migration_unreadable", "file=%s error=\"%s\"", path, strerror(errno));
        return RT_EIO;
    }
    size_t n;
    do {
        uint8_t *p = rt_buf_reserve(out, 65536);
        n = fread(p, 1, 65536, f);
        out->len += n;
    } while (n > 0);
    int bad = ferror(f);
    fclose(f);
    rt_buf_append_byte(out, 0);
    return bad ? RT_EIO : RT_OK;
}

static int migration_is_applied(PGconn *conn, int version, int *applied)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", version);
    const char *params[] = {v};
    PGresult *res = PQexecParams(conn, "SELECT 1 FROM rt_schema_migrations WHERE version = $1::int", 1, NULL, params,
                                 NULL, NULL, 0);
    int err = PQresultStatus(res) == PGRES_TUPLES_OK ? RT_OK : rt_pg_error(conn, res, "migration_check");
    if (err == RT_OK)
        *applied = PQntuples(res) > 0;
    PQclear(res);
    return err;
}

/* Runs one file's SQL and records it, in one transaction. */
static int migration_apply(PGconn *conn, const char *dir, const migration_t *m)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, m->name);
    rt_buf_t sql = {0};
    int err = read_file(path, &sql);
    if (err == RT_OK)
        err = rt_pg_exec(conn, "BEGIN", "migration_begin");
    if (err == RT_OK) {
        err = rt_pg_exec(conn, (const char *)sql.data, m->name);
        char v[16];
        snprintf(v, sizeof(v), "%d", m->version);
        const char *params[] = {v, m->name};
        PGresult *res = NULL;
        if (err == RT_OK) {
            res = PQexecParams(conn, "INSERT INTO rt_schema_migrations (version, name) VALUES ($1::int, $2)", 2, NULL,
                               params, NULL, NULL, 0);
            if (PQresultStatus(res) != PGRES_COMMAND_OK)
                err = rt_pg_error(conn, res, "migration_record");
        }
        PQclear(res);
        err = err == RT_OK ? rt_pg_exec(conn, "COMMIT", "migration_commit") : err;
        if (err != RT_OK)
            rt_pg_exec(conn, "ROLLBACK", "migration_rollback");
    }
    if (err == RT_OK)
        RT_LOG_INFO("migration_applied", "file=%s", m->name);
    rt_buf_dispose(&sql);
    return err;
}

static int migrations_run_locked(PGconn *conn, const char *dir, int *applied)
{
    migration_t *list = NULL;
    size_t n = 0;
    int err = rt_pg_exec(conn,
                         "CREATE TABLE IF NOT EXISTS rt_schema_migrations (version int PRIMARY KEY, name text NOT "
                         "NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                         "migration_table");
    if (err == RT_OK)
        err = migrations_list(dir, &list, &n);
    for (size_t i = 0; i < n && err == RT_OK; i++) {
        int done = 0;
        err = migration_is_applied(conn, list[i].version, &done);
        if (err == RT_OK && !done) {
            err = migration_apply(conn, dir, &list[i]);
            *applied += err == RT_OK;
        }
    }
    free(list);
    return err;
}

int rt_pg_migrate(PGconn *conn, const char *dir, int *applied)
{
    int count = 0;
    int err = rt_pg_exec(conn, "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")", "migration_lock");
    if (err != RT_OK)
        return err;
    err = migrations_run_locked(conn, dir, &count);
    /* a lost connection has released the session lock already */
    if (PQstatus(conn) == CONNECTION_OK)
        rt_pg_exec(conn, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")", "migration_unlock");
    if (err == RT_OK && applied != NULL)
        *applied = count;
    return err;
}

int rt_pg_migrate_at_start(const char *database_url, int64_t wait_ms, volatile int *stop)
{
    char dir[PATH_MAX];
    if (rt_pg_migrations_dir(dir, sizeof(dir)) != RT_OK) {
        const char *env = getenv("RT_MIGRATIONS_DIR");
        RT_LOG_ERROR("migrations_not_found", "dir=%s", env ? env : "migrations");
        return RT_ENOTFOUND;
    }
    uint64_t deadline = rt_now_mono_ns() + (uint64_t)wait_ms * 1000000;
    for (;;) {
        PGconn *conn = NULL;
        int applied = 0;
        int err = rt_pg_connect(database_url, &conn);
        if (err == RT_OK)
            err = rt_pg_migrate(conn, dir, &applied);
        PQfinish(conn);
        if (err == RT_OK)
            RT_LOG_INFO("migrated", "dir=%s applied=%d", dir, applied);
        if (err != RT_EUNAVAIL || rt_now_mono_ns() >= deadline || *stop)
            return err;
        usleep(500000);
    }
}
