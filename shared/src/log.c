/* log.c: one line per event, written with a single write(2) so lines from
 * several threads never interleave. */
#include "rt/log.h"
#include "rt/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

rt_log_level_t rt_log_min_level = RT_LOG_INFO;
static const char *log_service = "rtsync";

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void rt_log_init(const char *service, rt_log_level_t min_level)
{
    log_service = service;
    rt_log_min_level = min_level;
}

int rt_log_parse_level(const char *s, rt_log_level_t *out)
{
    for (size_t i = 0; i < RT_ARRAY_SIZE(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (rt_log_level_t)i;
            return RT_OK;
        }
    }
    return RT_EINVAL;
}

void rt_log_write(rt_log_level_t level, const char *event, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s svc=%s event=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], log_service, event);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t r = write(STDERR_FILENO, line, len);
    (void)r;
}
