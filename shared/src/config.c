/* config.c: table-driven configuration from the environment. */
#include "rt/config.h"
#include "rt/common.h"
#include "rt/log.h"

#include <ctype.h>
#include <signal.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct unit_suffix {
    const char *suffix;
    int64_t scale;
} unit_suffix_t;

static const unit_suffix_t byte_units[] = {
    {"", 1},         {"b", 1},         {"k", 1024},    {"kb", 1024},    {"kib", 1024},    {"m", 1 << 20},
    {"mb", 1 << 20}, {"mib", 1 << 20}, {"g", 1 << 30}, {"gb", 1 << 30}, {"gib", 1 << 30},
};
static const unit_suffix_t time_units[] = {
    {"", 1000}, {"s", 1000}, {"ms", 1}, {"m", 60000}, {"h", 3600000},
};
static const char *const true_words[] = {"1", "true", "yes", "on"};
static const char *const false_words[] = {"0", "false", "no", "off"};

static int parse_scaled(const char *text, const unit_suffix_t *units, size_t nunits, int64_t *out)
{
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (end == text || errno != 0 || v < 0)
        return RT_EINVAL;
    for (size_t i = 0; i < nunits; i++) {
        if (strcasecmp(end, units[i].suffix) == 0) {
            if (v > INT64_MAX / units[i].scale)
                return RT_EINVAL;
            *out = (int64_t)v * units[i].scale;
            return RT_OK;
        }
    }
    return RT_EINVAL;
}

static int parse_word(const char *text, const char *const *words, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(text, words[i]) == 0)
            return 1;
    return 0;
}

int rt_config_parse_value(rt_config_kind_t kind, const char *text, int64_t *out)
{
    switch (kind) {
    case RT_CFG_INT: return parse_scaled(text, byte_units, 1, out);
    case RT_CFG_BYTES: return parse_scaled(text, byte_units, RT_ARRAY_SIZE(byte_units), out);
    case RT_CFG_MILLIS: return parse_scaled(text, time_units, RT_ARRAY_SIZE(time_units), out);
    case RT_CFG_BOOL:
        if (parse_word(text, true_words, RT_ARRAY_SIZE(true_words)))
            *out = 1;
        else if (parse_word(text, false_words, RT_ARRAY_SIZE(false_words)))
            *out = 0;
        else
            return RT_EINVAL;
        return RT_OK;
    case RT_CFG_LEVEL: {
        rt_log_level_t level;
        if (rt_log_parse_level(text, &level) != RT_OK)
            return RT_EINVAL;
        *out = (int64_t)level;
        return RT_OK;
    }
    case RT_CFG_STRING: break;
    }
    return RT_EINVAL;
}

static const char *kind_name(rt_config_kind_t kind)
{
    static const char *const names[] = {"string", "integer", "bytes", "duration", "bool", "level"};
    return names[kind];
}

static void print_help(const char *program, const char *summary, const rt_config_var_t *vars, size_t nvars)
{
    printf("Usage: %s [--help]\n\n%s\n\nConfiguration (environment variables):\n", program, summary);
    for (size_t i = 0; i < nvars; i++) {
        const rt_config_var_t *v = &vars[i];
        printf("  %-22s %-8s default %-14s %s\n", v->name, kind_name(v->kind),
               v->default_value ? (*v->default_value ? v->default_value : "\"\"") : "(unset)", v->help);
    }
}

static int store_value(const rt_config_var_t *v, const char *text, void *cfg)
{
    char *slot = (char *)cfg + v->offset;
    if (v->kind == RT_CFG_STRING) {
        *(const char **)slot = text;
        return RT_OK;
    }
    int64_t value;
    if (text == NULL || rt_config_parse_value(v->kind, text, &value) != RT_OK)
        return RT_EINVAL;
    if (v->kind == RT_CFG_BOOL || v->kind == RT_CFG_LEVEL) {
        *(int *)slot = (int)value;
        return RT_OK;
    }
    if (value < v->min || value > v->max)
        return RT_ETOOBIG;
    *(int64_t *)slot = value;
    return RT_OK;
}

static int is_extra(const char *arg, const char *const *extra_args)
{
    for (; extra_args != NULL && *extra_args != NULL; extra_args++)
        if (strcmp(arg, *extra_args) == 0)
            return 1;
    return 0;
}

void rt_config_load_or_exit(const char *program, const char *summary, const rt_config_var_t *vars, size_t nvars,
                            void *cfg, int argc, char **argv, const char *const *extra_args)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help(program, summary, vars, nvars);
            exit(0);
        }
        if (!is_extra(argv[i], extra_args)) {
            fprintf(stderr, "%s: unknown argument '%s' (see --help)\n", program, argv[i]);
            exit(2);
        }
    }
    for (size_t i = 0; i < nvars; i++) {
        const rt_config_var_t *v = &vars[i];
        const char *text = getenv(v->name);
        if (text == NULL || (*text == '\0' && v->kind != RT_CFG_STRING))
            text = v->default_value;
        int err = store_value(v, text, cfg);
        if (err == RT_ETOOBIG) {
            fprintf(stderr, "%s: %s=%s is out of range [%" PRId64 ", %" PRId64 "]\n", program, v->name, text, v->min,
                    v->max);
            exit(2);
        }
        if (err != RT_OK) {
            fprintf(stderr, "%s: %s=%s is not a valid %s\n", program, v->name, text ? text : "", kind_name(v->kind));
            exit(2);
        }
    }
}

static volatile int *stop_flag;

static void on_stop_signal(int sig)
{
    (void)sig;
    *stop_flag = 1;
}

void rt_config_stop_on_signals(volatile int *stop)
{
    stop_flag = stop;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_stop_signal);
    signal(SIGINT, on_stop_signal);
}
