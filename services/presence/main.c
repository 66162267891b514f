/*
 * main.c: presence knows who is in which channel, through which edge and
 * connection, with their latest state; it answers member queries, forwards
 * WebRTC signals, and announces the leaves of members whose edge died.
 * Parse config, create, run, drain, destroy.
 */
#include "pres.h"
#include "rt/config.h"
#include "rt/log.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static const rt_config_var_t config_vars[] = {
    {"RT_NATS_URL", RT_CFG_STRING, "nats://127.0.0.1:4222", 0, 0, RT_CFG_AT(pres_config_t, nats_url), "NATS server"},
    {"RT_INSTANCE_ID", RT_CFG_STRING, NULL, 0, 0, RT_CFG_AT(pres_config_t, instance_id),
     "name of this replica, unique among replicas (logs, NATS client name, election: the smallest ready id "
     "announces leaves); unset: presence-<hostname>-<pid>"},
    {"RT_PRESENCE_TTL", RT_CFG_MILLIS, "30s", 600, 3600000, RT_CFG_AT(pres_config_t, ttl_ms),
     "an edge silent this long is dead and its members leave; edges heartbeat every TTL/6"},
    {"RT_LOG_LEVEL", RT_CFG_LEVEL, "info", 0, 0, RT_CFG_AT(pres_config_t, log_level), "debug, info, warn, error"},
};

static volatile int stop_requested;

int main(int argc, char **argv)
{
    pres_config_t cfg = {0};
    rt_config_load_or_exit("presence",
                           "Tracks channel members reported by the edges (rt.pres.updates, rt.pres.heartbeat),\n"
                           "answers rt.pres.query and rt.pres.signal (queue group \"pres\") and announces the\n"
                           "leaves of members whose edge stopped heartbeating.",
                           config_vars, RT_ARRAY_SIZE(config_vars), &cfg, argc, argv, NULL);
    char default_id[PRES_MAX_ID + 1];
    if (cfg.instance_id == NULL) { /* replicas scaled from one definition still differ */
        char host[64] = "localhost";
        gethostname(host, sizeof(host) - 1);
        snprintf(default_id, sizeof(default_id), "presence-%s-%ld", host, (long)getpid());
        cfg.instance_id = default_id;
    }
    if (!pres_text_valid(cfg.instance_id, PRES_MAX_ID, 0)) {
        fprintf(stderr, "presence: RT_INSTANCE_ID must be 1 to %d printable characters\n", PRES_MAX_ID);
        return 2;
    }
    rt_log_init("presence", (rt_log_level_t)cfg.log_level);
    rt_config_stop_on_signals(&stop_requested);

    pres_service_t *svc = NULL;
    int err = pres_service_create(&cfg, &svc);
    if (err != RT_OK) {
        if (err == RT_EINVAL)
            fprintf(stderr, "presence: RT_NATS_URL=%s is not a NATS URL\n", cfg.nats_url);
        return err == RT_EINVAL ? 2 : 1;
    }
    pres_service_run(svc, &stop_requested);
    pres_service_drain(svc);
    pres_service_destroy(svc);
    RT_LOG_INFO("stopped", "instance=%s", cfg.instance_id);
    return 0;
}
