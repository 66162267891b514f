/*
 * view.c: the member view, indexed twice: per edge ("channel\0conn" -> member,
 * what an edge's snapshot or death replaces) and per channel (conn -> member,
 * what queries and signals read).  Every change is O(1) per member, so a
 * 2000-member channel costs one member's work per join, leave or state, and a
 * query sorts only that channel.  Loop thread only.
 */
#include "pres.h"

#include <stdlib.h>
#include <string.h>

static pres_member_t *member_new(pres_edge_t *edge, const Rtsync__V1__Member *src)
{
    size_t lc = strlen(src->channel), ln = strlen(src->conn), lu = strlen(src->user);
    pres_member_t *m = rt_xmalloc(sizeof(*m) + lc + ln + lu + 3);
    char *p = m->key;
    memcpy(p, src->channel, lc + 1);
    memcpy(p + lc + 1, src->conn, ln + 1);
    memcpy(p + lc + ln + 2, src->user, lu + 1);
    m->edge = edge;
    m->channel = p;
    m->conn = p + lc + 1;
    m->user = p + lc + ln + 2;
    m->keylen = lc + 1 + ln;
    m->since_ms = src->since_ms;
    m->state = NULL;
    m->state_len = 0;
    if (src->state.len > 0) {
        m->state = rt_xmalloc(src->state.len);
        memcpy(m->state, src->state.data, src->state.len);
        m->state_len = src->state.len;
    }
    return m;
}

static void member_free(pres_member_t *m)
{
    if (m != NULL)
        free(m->state);
    free(m);
}

static void member_set_state(pres_member_t *m, ProtobufCBinaryData state)
{
    if (state.len == 0) {
        free(m->state);
        m->state = NULL;
    } else if (state.len != m->state_len) { /* a cursor's state keeps its size: no allocation */
        m->state = rt_xrealloc(m->state, state.len);
    }
    if (state.len > 0)
        memcpy(m->state, state.data, state.len);
    m->state_len = state.len;
}

static pres_channel_t *channel_get(pres_view_t *view, const char *name)
{
    size_t len = strlen(name);
    pres_channel_t *ch = rt_map_get(&view->channels, name, len);
    if (ch == NULL) {
        ch = rt_xcalloc(1, sizeof(*ch) + len + 1);
        memcpy(ch->name, name, len + 1);
        rt_map_put(&view->channels, ch->name, len, ch);
    }
    return ch;
}

static void link_member(pres_view_t *view, pres_member_t *m)
{
    pres_channel_t *ch = channel_get(view, m->channel);
    rt_map_put(&ch->members, m->conn, strlen(m->conn), m);
    rt_map_put(&m->edge->members, m->key, m->keylen, m);
    view->nmembers++;
}

/* Removes m from both indexes and frees it. */
static void unlink_member(pres_view_t *view, pres_member_t *m)
{
    rt_map_remove(&m->edge->members, m->key, m->keylen);
    size_t lc = strlen(m->channel);
    pres_channel_t *ch = rt_map_get(&view->channels, m->channel, lc);
    if (ch != NULL) {
        rt_map_remove(&ch->members, m->conn, strlen(m->conn));
        if (ch->members.len == 0) {
            rt_map_remove(&view->channels, m->channel, lc);
            rt_map_dispose(&ch->members);
            free(ch);
        }
    }
    view->nmembers--;
    member_free(m);
}

static pres_member_t *channel_member(const pres_view_t *view, const char *channel, const char *conn)
{
    const pres_channel_t *ch = pres_view_channel(view, channel);
    return ch ? rt_map_get(&ch->members, conn, strlen(conn)) : NULL;
}

const pres_channel_t *pres_view_channel(const pres_view_t *view, const char *name)
{
    return rt_map_get(&view->channels, name, strlen(name));
}

const pres_member_t *pres_view_member(const pres_view_t *view, const char *channel, const char *conn)
{
    return channel_member(view, channel, conn);
}

pres_edge_t *pres_view_edge(const pres_view_t *view, const char *id)
{
    return rt_map_get(&view->edges, id, strlen(id));
}

pres_edge_t *pres_view_edge_get(pres_view_t *view, const char *id, uint64_t epoch, int *created)
{
    pres_edge_t *e = pres_view_edge(view, id);
    *created = e == NULL;
    if (e == NULL) {
        e = rt_xcalloc(1, sizeof(*e));
        e->id = rt_xstrdup(id);
        e->epoch = epoch;
        rt_map_put(&view->edges, e->id, strlen(e->id), e);
    }
    return e;
}

void pres_view_edge_clear(pres_view_t *view, pres_edge_t *edge, pres_leave_cb on_leave, void *ctx)
{
    size_t pos = 0;
    rt_map_entry_t *ent;
    while ((ent = rt_map_next(&edge->members, &pos)) != NULL) {
        pres_member_t *m = ent->value;
        if (on_leave != NULL)
            on_leave(ctx, m);
        unlink_member(view, m); /* removes the entry just returned, as rt_map_next allows */
    }
}

void pres_view_edge_remove(pres_view_t *view, pres_edge_t *edge, pres_leave_cb on_leave, void *ctx)
{
    pres_view_edge_clear(view, edge, on_leave, ctx);
    pres_view_unstage(edge);
    rt_map_remove(&view->edges, edge->id, strlen(edge->id));
    rt_map_dispose(&edge->members);
    free(edge->staged);
    free(edge->id);
    free(edge);
}

void pres_view_apply(pres_view_t *view, pres_edge_t *edge, const Rtsync__V1__PresenceUpdate *u)
{
    const Rtsync__V1__Member *src = u->member;
    pres_member_t *old = channel_member(view, src->channel, src->conn);
    if (u->kind == RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_LEAVE) {
        if (old != NULL && old->edge == edge) /* a conn that moved to another edge stays */
            unlink_member(view, old);
        return;
    }
    if (old != NULL && old->edge == edge && strcmp(old->user, src->user) == 0) {
        /* a repeated join keeps the first since_ms; a state change keeps it too */
        member_set_state(old, src->state);
        return;
    }
    if (old != NULL)
        unlink_member(view, old);
    /* a state change of an unknown member (its join was lost) is as good as a join */
    link_member(view, member_new(edge, src));
}

void pres_view_stage(pres_edge_t *edge, const Rtsync__V1__PresenceBatch *b)
{
    for (size_t i = 0; i < b->n_updates; i++) {
        const Rtsync__V1__PresenceUpdate *u = b->updates[i];
        if (u->kind == RTSYNC__V1__PRESENCE_KIND__PRESENCE_KIND_LEAVE)
            continue;
        if (edge->nstaged == edge->staged_cap) {
            edge->staged_cap = edge->staged_cap ? 2 * edge->staged_cap : 64;
            edge->staged = rt_xrealloc(edge->staged, edge->staged_cap * sizeof(*edge->staged));
        }
        edge->staged[edge->nstaged++] = member_new(edge, u->member);
    }
}

void pres_view_unstage(pres_edge_t *edge)
{
    for (size_t i = 0; i < edge->nstaged; i++)
        member_free(edge->staged[i]);
    edge->nstaged = 0;
}

void pres_view_commit(pres_view_t *view, pres_edge_t *edge, pres_leave_cb on_leave, void *ctx)
{
    rt_map_t incoming = {0}; /* keys borrowed from the staged members */
    for (size_t i = 0; i < edge->nstaged; i++)
        rt_map_put(&incoming, edge->staged[i]->key, edge->staged[i]->keylen, edge->staged[i]);
    size_t pos = 0;
    rt_map_entry_t *ent;
    while ((ent = rt_map_next(&edge->members, &pos)) != NULL) {
        pres_member_t *m = ent->value;
        if (rt_map_get(&incoming, m->key, m->keylen) != NULL)
            continue;
        if (on_leave != NULL)
            on_leave(ctx, m);
        unlink_member(view, m);
    }
    rt_map_dispose(&incoming);
    for (size_t i = 0; i < edge->nstaged; i++) {
        pres_member_t *m = edge->staged[i];
        pres_member_t *old = channel_member(view, m->channel, m->conn);
        if (old != NULL)
            unlink_member(view, old); /* this edge's previous record, or a conn that moved here */
        link_member(view, m);
    }
    edge->nstaged = 0;
}

static int cmp_members(const void *a, const void *b)
{
    const pres_member_t *x = *(const pres_member_t *const *)a, *y = *(const pres_member_t *const *)b;
    if (x->since_ms != y->since_ms)
        return x->since_ms < y->since_ms ? -1 : 1;
    return strcmp(x->conn, y->conn);
}

size_t pres_view_list(const pres_view_t *view, const char *channel, const pres_member_t ***list, size_t *cap)
{
    const pres_channel_t *ch = pres_view_channel(view, channel);
    if (ch == NULL)
        return 0;
    if (ch->members.len > *cap) {
        *cap = ch->members.len;
        *list = rt_xrealloc(*list, *cap * sizeof(**list));
    }
    size_t n = 0, pos = 0;
    rt_map_entry_t *ent;
    while ((ent = rt_map_next(&ch->members, &pos)) != NULL)
        (*list)[n++] = ent->value;
    qsort(*list, n, sizeof(**list), cmp_members);
    return n;
}

void pres_view_dispose(pres_view_t *view)
{
    size_t pos = 0;
    rt_map_entry_t *ent;
    while ((ent = rt_map_next(&view->edges, &pos)) != NULL)
        pres_view_edge_remove(view, ent->value, NULL, NULL);
    rt_map_dispose(&view->edges);
    rt_map_dispose(&view->channels);
    view->nmembers = 0;
}
