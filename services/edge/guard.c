/*
 * guard.c: who a request is and what it may do (PROTOCOL.md sections 8, 9).
 *
 * Identity: with RT_JWT_SECRET set, an HS256 token from, in order, the
 * Authorization header, the WebSocket subprotocol list (bearer.<jwt>), the
 * rt_token cookie or ?token=; without it the stack is open and the user is
 * ?user=NAME or anon-<suffix>.  Rate limits: a sliding window per user over
 * every connection of this edge (the previous fixed window weighted by how
 * much of it still overlaps, plus the current one), and a cap on each user's
 * connections; both live in one table under a mutex, shared by the threads.
 */
#include "edge.h"

#include <stdlib.h>
#include <string.h>

typedef struct user_usage {
    char *user;
    int64_t window_start;
    uint32_t prev, curr;
    uint32_t conns;
} user_usage_t;

struct edge_guard {
    pthread_mutex_t lock;
    rt_map_t users; /* user -> user_usage_t */
    int64_t limit, window_ms, max_user_conns;
};

int edge_guard_create(const edge_config_t *config, edge_guard_t **out)
{
    edge_guard_t *g = rt_xcalloc(1, sizeof(*g));
    pthread_mutex_init(&g->lock, NULL);
    g->limit = config->rate_limit;
    g->window_ms = config->rate_window_ms;
    g->max_user_conns = config->max_user_conns;
    *out = g;
    return RT_OK;
}

void edge_guard_destroy(edge_guard_t *g)
{
    if (g == NULL)
        return;
    size_t pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&g->users, &pos)) != NULL) {
        user_usage_t *u = e->value;
        free(u->user);
        free(u);
    }
    rt_map_dispose(&g->users);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

/* Under the lock. */
static user_usage_t *usage_of(edge_guard_t *g, const char *user)
{
    user_usage_t *u = rt_map_get(&g->users, user, strlen(user));
    if (u == NULL) {
        u = rt_xcalloc(1, sizeof(*u));
        u->user = rt_xstrdup(user);
        rt_map_put(&g->users, u->user, strlen(u->user), u);
    }
    return u;
}

size_t edge_guard_tracked(edge_guard_t *g)
{
    pthread_mutex_lock(&g->lock);
    size_t n = g->users.len;
    pthread_mutex_unlock(&g->lock);
    return n;
}

void edge_guard_sweep(edge_guard_t *g, int64_t now_ms)
{
    /* a user with no connection whose windows have both slid out counts for nothing */
    pthread_mutex_lock(&g->lock);
    size_t pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&g->users, &pos)) != NULL) {
        user_usage_t *u = e->value;
        if (u->conns == 0 && now_ms - u->window_start >= 2 * g->window_ms) {
            rt_map_remove(&g->users, u->user, strlen(u->user));
            free(u->user);
            free(u);
        }
    }
    pthread_mutex_unlock(&g->lock);
}

int edge_guard_rate(edge_guard_t *g, const char *user, int64_t now_ms, int64_t *retry_after_ms)
{
    pthread_mutex_lock(&g->lock);
    user_usage_t *u = usage_of(g, user);
    int64_t elapsed = now_ms - u->window_start;
    if (elapsed >= 2 * g->window_ms) {
        u->prev = 0, u->curr = 0, u->window_start = now_ms, elapsed = 0;
    } else if (elapsed >= g->window_ms) {
        u->prev = u->curr, u->curr = 0, u->window_start += g->window_ms, elapsed -= g->window_ms;
    }
    double weight = (double)(g->window_ms - elapsed) / (double)g->window_ms;
    double used = u->prev * weight + u->curr;
    int ok = used + 1 <= (double)g->limit;
    if (ok) {
        u->curr++;
    } else {
        /* when enough of the previous window has slid out, or the current one ends */
        double need = used + 1 - (double)g->limit;
        int64_t wait = u->prev > 0 ? (int64_t)(need / u->prev * (double)g->window_ms) + 1 : g->window_ms - elapsed;
        *retry_after_ms = wait < g->window_ms - elapsed ? wait : g->window_ms - elapsed;
    }
    pthread_mutex_unlock(&g->lock);
    return ok ? RT_OK : RT_ETOOBIG;
}

int edge_guard_conn_open(edge_guard_t *g, const char *user)
{
    pthread_mutex_lock(&g->lock);
    user_usage_t *u = usage_of(g, user);
    int ok = u->conns < (uint32_t)g->max_user_conns;
    if (ok)
        u->conns++;
    pthread_mutex_unlock(&g->lock);
    return ok ? RT_OK : RT_ETOOBIG;
}

void edge_guard_conn_close(edge_guard_t *g, const char *user)
{
    pthread_mutex_lock(&g->lock);
    user_usage_t *u = rt_map_get(&g->users, user, strlen(user));
    if (u != NULL && u->conns > 0)
        u->conns--;
    pthread_mutex_unlock(&g->lock);
}

/* ---- identity ---------------------------------------------------------------------- */

static h2o_iovec_t header(h2o_req_t *req, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    return i < 0 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

/* The token from the first of the four sources that has one. */
static h2o_iovec_t find_token(h2o_req_t *req, char *query_buf, size_t query_size)
{
    h2o_iovec_t v = header(req, "authorization");
    if (v.len > 7 && h2o_lcstris(v.base, 7, H2O_STRLIT("bearer ")))
        return h2o_iovec_init(v.base + 7, v.len - 7);
    v = header(req, "sec-websocket-protocol");
    h2o_iovec_t iter = v, elem;
    const char *tok;
    size_t tok_len;
    while ((tok = h2o_next_token(&iter, ',', &tok_len, &elem)) != NULL)
        if (tok_len > 7 && memcmp(tok, "bearer.", 7) == 0)
            return h2o_iovec_init(tok + 7, tok_len - 7);
    v = header(req, "cookie");
    for (const char *p = v.base, *end = v.base + v.len; p != NULL && p < end;) {
        while (p < end && (*p == ' ' || *p == ';'))
            p++;
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        if ((size_t)(stop - p) > 9 && memcmp(p, "rt_token=", 9) == 0)
            return h2o_iovec_init(p + 9, (size_t)(stop - p - 9));
        p = semi;
    }
    if (edge_http_query_param(req, "token", query_buf, query_size) == RT_OK)
        return h2o_iovec_init(query_buf, strlen(query_buf));
    return h2o_iovec_init(NULL, 0);
}

int edge_guard_identify(edge_thread_t *t, h2o_req_t *req, const char *anon_suffix, edge_identity_t *out)
{
    const edge_config_t *cfg = &t->server->config;
    memset(out, 0, sizeof(*out));
    h2o_iovec_t origin = header(req, "origin");
    if (origin.base != NULL && *cfg->allowed_origins &&
        !h2o_contains_token(cfg->allowed_origins, strlen(cfg->allowed_origins), origin.base, origin.len, ',')) {
        edge_http_error(req, 403, "forbidden", "this Origin is not in RT_ALLOWED_ORIGINS");
        return RT_EINVAL;
    }
    if (*cfg->jwt_secret == '\0') {
        int err = edge_http_query_param(req, "user", out->user, sizeof(out->user));
        if (err == RT_ENOTFOUND) {
            snprintf(out->user, sizeof(out->user), "anon-%s", anon_suffix);
        } else if (err != RT_OK || !rt_name_is_valid(out->user, strlen(out->user))) {
            edge_http_error(req, 400, "bad_request", "user names match [A-Za-z0-9_.:-]{1,128}");
            return RT_EINVAL;
        }
        return RT_OK;
    }
    char query_buf[RT_AUTH_MAX_TOKEN + 1];
    h2o_iovec_t token = find_token(req, query_buf, sizeof(query_buf));
    const char *why = "no token";
    if (token.base == NULL || rt_auth_verify(cfg->jwt_secret, strlen(cfg->jwt_secret), token.base, token.len,
                                             rt_now_wall_ms() / 1000, &out->claims, &why) != RT_OK) {
        edge_http_error(req, 401, "unauthorized", why);
        return RT_EINVAL;
    }
    out->authenticated = 1;
    snprintf(out->user, sizeof(out->user), "%s", out->claims.sub);
    return RT_OK;
}

void edge_identity_dispose(edge_identity_t *id)
{
    if (id != NULL && id->authenticated)
        rt_auth_claims_dispose(&id->claims);
}

int edge_identity_allows(const edge_identity_t *id, const char *name)
{
    return !id->authenticated || rt_auth_allows(&id->claims, name);
}
