/*
 * rt/config.h: configuration from the environment, declared as a table.
 *
 * Each service describes its variables once (name, kind, default, bounds,
 * help, where the value goes); rt_config_load_or_exit parses them, prints the
 * table for --help, and exits 2 with one line on a bad value.
 */
#ifndef RT_CONFIG_H
#define RT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef enum rt_config_kind {
    RT_CFG_STRING, /* const char *: borrowed from the environment or the default */
    RT_CFG_INT,    /* int64_t */
    RT_CFG_BYTES,  /* int64_t bytes; accepts 64k, 4M, 4MiB, 1G */
    RT_CFG_MILLIS, /* int64_t milliseconds; accepts 25 (seconds), 25s, 500ms, 2m, 1h */
    RT_CFG_BOOL,   /* int: 1/0, true/false, yes/no, on/off */
    RT_CFG_LEVEL,  /* int (rt_log_level_t): debug, info, warn, error */
} rt_config_kind_t;

typedef struct rt_config_var {
    const char *name; /* RT_... */
    rt_config_kind_t kind;
    const char *default_value; /* NULL: unset unless given (strings only) */
    int64_t min, max;          /* bounds of numeric kinds, in their unit */
    size_t offset;             /* where the value is stored in the config struct */
    const char *help;
} rt_config_var_t;

#define RT_CFG_AT(type, field) offsetof(type, field)

/*
 * Fills `cfg` from the environment.  Handles `--help` (prints the table and
 * exits 0) and an unknown argument or bad value (one line on stderr, exit 2).
 * Arguments other than --help that are listed in `extra_args` (NULL-terminated)
 * are left for the caller.  Borrows everything; call from main only.
 */
void rt_config_load_or_exit(const char *program, const char *summary, const rt_config_var_t *vars, size_t nvars,
                            void *cfg, int argc, char **argv, const char *const *extra_args);

/* Parses one value of `kind` into *out; 0 or RT_EINVAL. */
int rt_config_parse_value(rt_config_kind_t kind, const char *text, int64_t *out);

/* Main thread, once: SIGPIPE is ignored, and SIGTERM or SIGINT set *stop (which
 * the service's loop checks) instead of killing the process. */
void rt_config_stop_on_signals(volatile int *stop);

#endif
