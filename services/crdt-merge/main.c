/*
 * main.c: crdt-merge merges and persists Yjs document updates and answers sync
 * requests over NATS (PROTOCOL.md section 7).  Parse config, migrate, create,
 * run, drain, destroy.
 */
#include "crdt.h"
#include "rt/config.h"
#include "rt/log.h"
#include "rt/pg.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MIGRATE_WAIT_MS 30000
#define CFG(field) RT_CFG_AT(crdt_config_t, field)

static const rt_config_var_t config_vars[] = {
    {"RT_NATS_URL", RT_CFG_STRING, "nats://127.0.0.1:4222", 0, 0, CFG(nats_url), "NATS server"},
    {"RT_DATABASE_URL", RT_CFG_STRING, "postgresql://rtsync@127.0.0.1:5433/rtsync", 0, 0, CFG(database_url),
     "PostgreSQL connection URL or key=value string"},
    {"RT_INSTANCE_ID", RT_CFG_STRING, "crdt-merge", 0, 0, CFG(instance_id),
     "name of this replica (logs, NATS client name, document ownership)"},
    {"RT_LOG_LEVEL", RT_CFG_LEVEL, "info", 0, 0, CFG(log_level), "debug, info, warn, error"},
    {"RT_MIGRATIONS_DIR", RT_CFG_STRING, NULL, 0, 0, CFG(migrations_dir),
     "schema migrations; unset: ./migrations, else <binary dir>/../../migrations"},
    {"RT_MAX_DOC_UPDATE", RT_CFG_BYTES, "8MiB", 1024, 1ll << 30, CFG(max_update), "largest document update"},
    {"RT_DOC_IDLE", RT_CFG_MILLIS, "60s", 100, 86400000, CFG(idle_ms),
     "a document without clients or requests this long is unloaded"},
    {"RT_DOC_COMPACT_UPDATES", RT_CFG_INT, "1000", 1, 100000000, CFG(compact_updates),
     "logged updates of a document before they are compacted into a snapshot"},
    {"RT_DOC_COMPACT_BYTES", RT_CFG_BYTES, "4MiB", 1024, 1ll << 34, CFG(compact_bytes),
     "logged bytes of a document before they are compacted into a snapshot"},
    {"RT_AWARENESS_TTL", RT_CFG_MILLIS, "30s", 1000, 3600000, CFG(awareness_ttl_ms),
     "an awareness state not renewed this long is removed (clients renew every 15 s)"},
    {"RT_DOC_EDGE_TTL", RT_CFG_MILLIS, "6s", 1000, 600000, CFG(edge_ttl_ms),
     "an edge silent this long is dead: its connections' awareness states are removed"},
};

static volatile int stop_requested;

int main(int argc, char **argv)
{
    crdt_config_t cfg = {0};
    rt_config_load_or_exit("crdt-merge",
                           "Merges and persists Yjs document updates and answers sync requests over NATS\n"
                           "(rt.doc.sync, rt.doc.update, rt.doc.get; awareness on rt.doc.aw.<doc>).",
                           config_vars, RT_ARRAY_SIZE(config_vars), &cfg, argc, argv, NULL);
    char *bad = NULL;
    PQconninfoOption *conninfo = PQconninfoParse(cfg.database_url, &bad);
    if (conninfo == NULL) {
        fprintf(stderr, "crdt-merge: RT_DATABASE_URL is not a connection string: %s", bad ? bad : "out of memory\n");
        PQfreemem(bad);
        return 2;
    }
    PQconninfoFree(conninfo);
    if (strlen(cfg.instance_id) == 0 || strlen(cfg.instance_id) > CRDT_MAX_ID) {
        fprintf(stderr, "crdt-merge: RT_INSTANCE_ID must have 1 to %d characters\n", CRDT_MAX_ID);
        return 2;
    }
    rt_log_init("crdt-merge", (rt_log_level_t)cfg.log_level);
    rt_config_stop_on_signals(&stop_requested);

    if (rt_pg_migrate_at_start(cfg.database_url, MIGRATE_WAIT_MS, &stop_requested) != RT_OK)
        return 1;
    crdt_service_t *svc = NULL;
    int err = crdt_service_create(&cfg, &svc);
    if (err != RT_OK)
        return err == RT_EINVAL ? 2 : 1;
    crdt_service_run(svc, &stop_requested);
    crdt_service_drain(svc);
    crdt_service_destroy(svc);
    RT_LOG_INFO("stopped", "instance=%s", cfg.instance_id);
    return 0;
}
