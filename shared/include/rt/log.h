/*
 * rt/log.h: structured one-line logs on stderr.
 *
 *   RT_LOG_INFO("listening", "addr=%s threads=%d", addr, n);
 *   -> ts=2026-11-28T02:40:00.123Z level=info svc=edge event=listening addr=... threads=2
 *
 * The level is checked before the arguments are evaluated.  Safe from any thread.
 */
#ifndef RT_LOG_H
#define RT_LOG_H

typedef enum rt_log_level { RT_LOG_DEBUG, RT_LOG_INFO, RT_LOG_WARN, RT_LOG_ERROR } rt_log_level_t;

extern rt_log_level_t rt_log_min_level;

/* Sets the service name printed as svc=; borrows `service` (static storage). */
void rt_log_init(const char *service, rt_log_level_t min_level);
/* Parses "debug", "info", "warn" or "error"; returns 0 or RT_EINVAL. */
int rt_log_parse_level(const char *s, rt_log_level_t *out);
void rt_log_write(rt_log_level_t level, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define RT_LOG(level, event, ...)                                                                                      \
    do {                                                                                                               \
        if ((level) >= rt_log_min_level)                                                                               \
            rt_log_write((level), (event), __VA_ARGS__);                                                               \
    } while (0)
#define RT_LOG_DEBUG(event, ...) RT_LOG(RT_LOG_DEBUG, event, __VA_ARGS__)
#define RT_LOG_INFO(event, ...) RT_LOG(RT_LOG_INFO, event, __VA_ARGS__)
#define RT_LOG_WARN(event, ...) RT_LOG(RT_LOG_WARN, event, __VA_ARGS__)
#define RT_LOG_ERROR(event, ...) RT_LOG(RT_LOG_ERROR, event, __VA_ARGS__)

#endif
