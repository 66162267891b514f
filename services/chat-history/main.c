/*
 * main.c: chat-history sequences and persists channel messages in PostgreSQL
 * and answers history queries over NATS.  Parse config, migrate, create, run,
 * drain, destroy; `chat-history migrate` only applies the migrations (a
 * Kubernetes Job).
 */
#include "hist.h"
#include "rt/config.h"
#include "rt/log.h"
#include "rt/pg.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MIGRATE_WAIT_MS 30000

static const rt_config_var_t config_vars[] = {
    {"RT_NATS_URL", RT_CFG_STRING, "nats://127.0.0.1:4222", 0, 0, RT_CFG_AT(hist_config_t, nats_url), "NATS server"},
    {"RT_DATABASE_URL", RT_CFG_STRING, "postgresql://rtsync@127.0.0.1:5433/rtsync", 0, 0,
     RT_CFG_AT(hist_config_t, database_url), "PostgreSQL connection URL or key=value string"},
    {"RT_INSTANCE_ID", RT_CFG_STRING, "chat-history", 0, 0, RT_CFG_AT(hist_config_t, instance_id),
     "name of this replica (logs, NATS client name)"},
    {"RT_LOG_LEVEL", RT_CFG_LEVEL, "info", 0, 0, RT_CFG_AT(hist_config_t, log_level), "debug, info, warn, error"},
    {"RT_MIGRATIONS_DIR", RT_CFG_STRING, NULL, 0, 0, RT_CFG_AT(hist_config_t, migrations_dir),
     "schema migrations; unset: ./migrations, else <binary dir>/../../migrations"},
    {"RT_HISTORY_RETAIN", RT_CFG_INT, "10000", 1, INT64_MAX / 2, RT_CFG_AT(hist_config_t, retain),
     "messages kept per channel"},
    {"RT_HISTORY_TRIM_INTERVAL", RT_CFG_MILLIS, "1s", 10, 3600000, RT_CFG_AT(hist_config_t, trim_interval_ms),
     "how often old messages are trimmed"},
    {"RT_HIST_BATCH_MAX", RT_CFG_INT, "2000", 1, 100000, RT_CFG_AT(hist_config_t, batch_max),
     "publishes committed in one transaction at most"},
    {"RT_HIST_QUEUE_MAX", RT_CFG_INT, "100000", 1, 10000000, RT_CFG_AT(hist_config_t, queue_max),
     "publishes waiting for a commit at most (beyond: unavailable)"},
    {"RT_HIST_QUEUE_BYTES", RT_CFG_BYTES, "256M", 1 << 20, INT64_MAX / 2, RT_CFG_AT(hist_config_t, queue_bytes),
     "message data waiting for a commit at most (beyond: unavailable)"},
    {"RT_HIST_QUERY_QUEUE_MAX", RT_CFG_INT, "10000", 1, 1000000, RT_CFG_AT(hist_config_t, query_queue_max),
     "history queries waiting at most (beyond: unavailable)"},
};

static volatile int stop_requested;

int main(int argc, char **argv)
{
    static const char *const extra[] = {"migrate", NULL};
    hist_config_t cfg = {0};
    rt_config_load_or_exit("chat-history",
                           "Sequences channel messages into PostgreSQL and answers history queries over NATS\n"
                           "(rt.hist.publish, rt.hist.query).  `chat-history migrate` applies the schema\n"
                           "migrations and exits.",
                           config_vars, RT_ARRAY_SIZE(config_vars), &cfg, argc, argv, extra);
    char *bad = NULL;
    PQconninfoOption *conninfo = PQconninfoParse(cfg.database_url, &bad);
    if (conninfo == NULL) {
        fprintf(stderr, "chat-history: RT_DATABASE_URL is not a connection string: %s", bad ? bad : "out of memory\n");
        PQfreemem(bad);
        return 2;
    }
    PQconninfoFree(conninfo);
    rt_log_init("chat-history", (rt_log_level_t)cfg.log_level);
    rt_config_stop_on_signals(&stop_requested);

    int only_migrate = argc > 1 && strcmp(argv[1], "migrate") == 0;
    if (rt_pg_migrate_at_start(cfg.database_url, MIGRATE_WAIT_MS, &stop_requested) != RT_OK)
        return 1;
    if (only_migrate)
        return 0;

    hist_service_t *svc = NULL;
    int err = hist_service_create(&cfg, &svc);
    if (err != RT_OK)
        return err == RT_EINVAL ? 2 : 1; /* RT_EINVAL: a bad RT_NATS_URL */
    hist_service_run(svc, &stop_requested);
    hist_service_drain(svc);
    hist_service_destroy(svc);
    RT_LOG_INFO("stopped", "instance=%s", cfg.instance_id);
    return 0;
}
