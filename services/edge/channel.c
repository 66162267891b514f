/*
 * channel.c: the thread's channel table and the ordering of durable messages.
 *
 * A channel exists while a local client is subscribed to it, and holds the
 * thread's NATS subscription to its fan-out subject for exactly that long.
 * Every subscription keeps the last offset it delivered: a durable message
 * past a gap is held, the gap gets a moment to fill by itself (two
 * chat-history replicas may publish out of order), then it is fetched from
 * chat-history; a resume (since) is the same fetch, made at once.
 */
#include "edge.h"
#include "rt/log.h"

#include <stdlib.h>
#include <string.h>

#define FILL_PAGE 1000

typedef struct held_msg {
    h2o_linklist_t link;
    uint64_t offset;
    size_t len;
    uint8_t packed[]; /* the ChannelMessage as it came */
} held_msg_t;

typedef struct fill_ticket {
    edge_thread_t *thread;
    uint64_t generation;
    uint64_t after;
    uint32_t limit;
    char name[];
} fill_ticket_t;

static void channel_fill(edge_channel_t *ch);

/* ---- per-subscription ordering ------------------------------------------------------ */

static void deliver(edge_sub_t *sub, edge_message_t *m)
{
    if (m->pb->offset != 0)
        sub->delivered = m->pb->offset;
    sub->client->ops->deliver(sub->client, sub->channel, m);
}

static void hold(edge_sub_t *sub, const Rtsync__V1__ChannelMessage *pb)
{
    h2o_linklist_t *pos = &sub->held;
    for (h2o_linklist_t *n = sub->held.prev; n != &sub->held; n = n->prev) {
        held_msg_t *h = RT_CONTAINER_OF(n, held_msg_t, link);
        if (h->offset == pb->offset)
            return;
        if (h->offset < pb->offset)
            break;
        pos = n;
    }
    size_t len = rtsync__v1__channel_message__get_packed_size(pb);
    held_msg_t *h = rt_xcalloc(1, sizeof(*h) + len);
    h->offset = pb->offset;
    h->len = len;
    rtsync__v1__channel_message__pack(pb, h->packed);
    h2o_linklist_insert(pos, &h->link);
}

static int has_gap(edge_sub_t *sub)
{
    return !h2o_linklist_is_empty(&sub->held);
}

/* Delivers held messages that are next in line.  A held message at or below
 * `skip_upto` is next in line whatever precedes it: history has been asked up
 * to there, so what is missing is gone for good (retention). */
static void drain_held(edge_sub_t *sub, uint64_t skip_upto)
{
    while (has_gap(sub) && !sub->replaying) {
        held_msg_t *h = RT_CONTAINER_OF(sub->held.next, held_msg_t, link);
        if (!sub->known) {
            sub->known = 1;
            sub->delivered = h->offset - 1;
        }
        if (h->offset > sub->delivered + 1 && h->offset > skip_upto)
            return;
        h2o_linklist_unlink(&h->link);
        if (h->offset > sub->delivered) {
            edge_message_t m = {.pb = rtsync__v1__channel_message__unpack(NULL, h->len, h->packed)};
            deliver(sub, &m);
            edge_frame_release(m.ws);
            edge_frame_release(m.sse);
            rtsync__v1__channel_message__free_unpacked(m.pb, NULL);
        }
        free(h);
    }
}

static void drop_held(edge_sub_t *sub)
{
    while (has_gap(sub)) {
        held_msg_t *h = RT_CONTAINER_OF(sub->held.next, held_msg_t, link);
        h2o_linklist_unlink(&h->link);
        free(h);
    }
}

static void offer(edge_sub_t *sub, edge_message_t *m)
{
    uint64_t off = m->pb->offset;
    if (*m->pb->to_conn) { /* a signal: for one connection only */
        if (strcmp(m->pb->to_conn, sub->client->conn_id) == 0)
            sub->client->ops->deliver(sub->client, sub->channel, m);
        return;
    }
    if (m->pb->presence != NULL) { /* member events: for the others, as they come */
        if (strcmp(m->pb->from_conn, sub->client->conn_id) != 0)
            sub->client->ops->deliver(sub->client, sub->channel, m);
        return;
    }
    if (off == 0) { /* ephemeral: no order to keep */
        sub->client->ops->deliver(sub->client, sub->channel, m);
        return;
    }
    if (!sub->known && !sub->replaying) { /* history was unavailable: start here */
        sub->known = 1;
        sub->delivered = off - 1;
    }
    if (sub->known && off <= sub->delivered)
        return; /* seen already */
    if (!sub->replaying && off == sub->delivered + 1 && !has_gap(sub)) {
        deliver(sub, m);
        return;
    }
    hold(sub, m->pb);
    if (!sub->replaying && !h2o_timeout_is_linked(&sub->channel->gap_entry) && !sub->channel->filling)
        h2o_timeout_link(sub->channel->thread->ctx.loop, &sub->channel->thread->gap_timeout, &sub->channel->gap_entry);
    drain_held(sub, 0); /* the message may have been the one missing */
}

/* ---- filling gaps and replays from chat-history -------------------------------------- */

static int needs_fill(edge_sub_t *sub)
{
    return sub->replaying || sub->probe || has_gap(sub);
}

static void announce(edge_sub_t *sub, uint64_t latest)
{
    if (!sub->announced) {
        sub->announced = 1;
        sub->client->ops->subscribed(sub->client, sub, latest);
    }
}

static void on_fill_failed(edge_channel_t *ch)
{
    for (h2o_linklist_t *n = ch->subs.next, *next; n != &ch->subs; n = next) {
        next = n->next;
        edge_sub_t *sub = RT_CONTAINER_OF(n, edge_sub_t, channel_link);
        if (sub->replaying && sub->has_since) {
            edge_client_t *client = sub->client;
            char *name = rt_xstrdup(ch->name);
            int last = ch->nsubs == 1;
            edge_channel_unsubscribe(sub);
            client->ops->replay_failed(client, name);
            free(name);
            if (last)
                return; /* the channel went with its last subscriber */
            continue;
        }
        if (sub->replaying) {
            /* live from here on; the first durable message sets the position */
            sub->replaying = 0;
            sub->known = 0;
            announce(sub, 0);
        } else if (has_gap(sub)) {
            RT_LOG_WARN("gap_unfilled", "channel=%s after=%llu", ch->name, (unsigned long long)sub->delivered);
        }
        sub->probe = 0;
        drain_held(sub, UINT64_MAX);
    }
}

/* Gives the subscription the page's messages it has not had.  A page is one
 * snapshot and offsets commit in order, so an offset missing inside it is gone
 * for good (retention), not late. */
static void take_page(edge_sub_t *sub, Rtsync__V1__HistoryReply *reply)
{
    for (size_t i = 0; i < reply->n_messages; i++) {
        edge_message_t m = {.pb = reply->messages[i]};
        if (m.pb->offset > sub->delivered)
            deliver(sub, &m);
        edge_frame_release(m.ws);
        edge_frame_release(m.sse);
    }
}

static void on_fill_reply(void *ctx, int err, Rtsync__V1__HistoryReply *reply)
{
    fill_ticket_t *ticket = ctx;
    edge_channel_t *ch = rt_map_get(&ticket->thread->channels, ticket->name, strlen(ticket->name));
    uint64_t after = ticket->after;
    int complete = ticket->limit == 0 || (reply != NULL && reply->n_messages < ticket->limit);
    int ours = ch != NULL && ch->generation == ticket->generation;
    free(ticket);
    if (!ours)
        return; /* the channel went away meanwhile */
    ch->filling = 0;
    if (err != RT_OK) {
        on_fill_failed(ch);
        return;
    }
    uint64_t latest = reply->latest;
    for (h2o_linklist_t *n = ch->subs.next; n != &ch->subs; n = n->next) {
        edge_sub_t *sub = RT_CONTAINER_OF(n, edge_sub_t, channel_link);
        if (sub->replaying && !sub->has_since) {
            sub->known = 1;
            sub->delivered = latest; /* no resume asked: from now on */
        } else if (!needs_fill(sub) || sub->delivered < after) {
            continue; /* nothing to do, or came during this fill: the next one is for it */
        }
        announce(sub, latest);
        take_page(sub, reply);
        sub->probe = 0;
        if (sub->replaying && complete) {
            sub->replaying = 0;
            sub->known = 1;
        }
        drain_held(sub, complete ? latest : 0);
    }
    channel_fill(ch); /* the next page, or subscriptions that came meanwhile */
}

static void channel_fill(edge_channel_t *ch)
{
    if (ch->filling)
        return;
    uint64_t after = UINT64_MAX;
    int any = 0, replay = 0;
    for (h2o_linklist_t *n = ch->subs.next; n != &ch->subs; n = n->next) {
        edge_sub_t *sub = RT_CONTAINER_OF(n, edge_sub_t, channel_link);
        if (!needs_fill(sub))
            continue;
        any = 1;
        if (sub->replaying && !sub->has_since)
            continue; /* only needs the latest offset */
        replay = 1;
        if (sub->delivered < after)
            after = sub->delivered;
    }
    if (!any)
        return;
    if (h2o_timeout_is_linked(&ch->gap_entry))
        h2o_timeout_unlink(&ch->gap_entry);
    size_t namelen = strlen(ch->name);
    fill_ticket_t *ticket = rt_xmalloc(sizeof(*ticket) + namelen + 1);
    ticket->thread = ch->thread;
    ticket->generation = ch->generation;
    ticket->after = replay ? after : 0;
    ticket->limit = replay ? FILL_PAGE : 0;
    memcpy(ticket->name, ch->name, namelen + 1);
    ch->filling = 1;
    edge_history_query(ch->thread, ch->name, 0, ticket->after, ticket->limit, on_fill_reply, ticket);
}

static void on_gap_timeout(h2o_timeout_entry_t *entry)
{
    channel_fill(RT_CONTAINER_OF(entry, edge_channel_t, gap_entry));
}

/* ---- the channel table ------------------------------------------------------------------- */

/* Offers the message to every subscription of the channel, then drops the frames made for it. */
static void offer_all(edge_channel_t *ch, edge_message_t *m)
{
    edge_metrics_observe_latency(ch->thread, m->pb->ts_ms);
    /* Delivery may unsubscribe a client (slow consumer), so walk with a saved next. */
    for (h2o_linklist_t *node = ch->subs.next, *next; node != &ch->subs; node = next) {
        next = node->next;
        offer(RT_CONTAINER_OF(node, edge_sub_t, channel_link), m);
    }
    edge_frame_release(m->ws);
    edge_frame_release(m->sse);
}

static void on_channel_message(void *ctx, const rt_bus_msg_t *msg)
{
    edge_channel_t *ch = ctx;
    edge_thread_t *t = ch->thread;
    EDGE_COUNT(t, bus_messages, 1);
    edge_message_t m = {.pb = rtsync__v1__channel_message__unpack(NULL, msg->data.len, msg->data.data)};
    if (m.pb == NULL || strcmp(m.pb->channel, ch->name) != 0) {
        EDGE_COUNT(t, bus_bad, 1);
        RT_LOG_WARN("bus_bad_message", "subject=%s bytes=%zu", msg->subject, msg->data.len);
        goto Exit;
    }
    offer_all(ch, &m);
Exit:
    if (m.pb != NULL)
        rtsync__v1__channel_message__free_unpacked(m.pb, NULL);
}

void edge_channel_deliver_local(edge_thread_t *t, Rtsync__V1__ChannelMessage *pb)
{
    edge_channel_t *ch = rt_map_get(&t->channels, pb->channel, strlen(pb->channel));
    if (ch != NULL)
        offer_all(ch, &(edge_message_t){.pb = pb});
}

static int channel_create(edge_thread_t *t, const char *name, edge_channel_t **out)
{
    edge_channel_t *ch = rt_xcalloc(1, sizeof(*ch));
    ch->thread = t;
    ch->name = rt_xstrdup(name);
    ch->generation = ++t->next_generation;
    ch->gap_entry.cb = on_gap_timeout;
    h2o_linklist_init_anchor(&ch->subs);
    char subject[160];
    rt_bus_subject(subject, sizeof(subject), "rt.ch", name);
    int err = rt_bus_subscribe(t->bus, t->loop, subject, NULL, on_channel_message, ch, &ch->bus_sub);
    if (err != RT_OK) {
        free(ch->name);
        free(ch);
        return err;
    }
    rt_map_put(&t->channels, ch->name, strlen(ch->name), ch);
    *out = ch;
    return RT_OK;
}

static void channel_destroy(edge_channel_t *ch)
{
    rt_map_remove(&ch->thread->channels, ch->name, strlen(ch->name));
    if (h2o_timeout_is_linked(&ch->gap_entry))
        h2o_timeout_unlink(&ch->gap_entry);
    rt_bus_unsubscribe(ch->bus_sub);
    free(ch->name);
    free(ch);
}

edge_sub_t *edge_client_find_sub(edge_client_t *client, const char *channel)
{
    for (h2o_linklist_t *node = client->subs.next; node != &client->subs; node = node->next) {
        edge_sub_t *sub = RT_CONTAINER_OF(node, edge_sub_t, client_link);
        if (strcmp(sub->channel->name, channel) == 0)
            return sub;
    }
    return NULL;
}

int edge_channel_subscribe(edge_thread_t *t, edge_client_t *client, const char *name, int has_since, uint64_t since,
                           edge_sub_t **out)
{
    edge_sub_t *existing = edge_client_find_sub(client, name);
    if (existing != NULL) {
        *out = existing;
        return RT_OK;
    }
    edge_channel_t *ch = rt_map_get(&t->channels, name, strlen(name));
    if (ch == NULL) {
        int err = channel_create(t, name, &ch);
        if (err != RT_OK)
            return err;
    }
    edge_sub_t *sub = rt_xcalloc(1, sizeof(*sub));
    sub->client = client;
    sub->channel = ch;
    sub->replaying = 1;
    sub->has_since = has_since != 0;
    sub->known = sub->has_since;
    sub->delivered = since;
    h2o_linklist_init_anchor(&sub->held);
    h2o_linklist_insert(&ch->subs, &sub->channel_link);
    h2o_linklist_insert(&client->subs, &sub->client_link);
    ch->nsubs++;
    client->nsubs++;
    *out = sub;
    return RT_OK;
}

void edge_channel_start_replay(edge_sub_t *sub)
{
    channel_fill(sub->channel);
}

void edge_channels_probe(edge_thread_t *t)
{
    size_t pos = 0;
    rt_map_entry_t *e;
    while ((e = rt_map_next(&t->channels, &pos)) != NULL) {
        edge_channel_t *ch = e->value;
        int any = 0;
        for (h2o_linklist_t *n = ch->subs.next; n != &ch->subs; n = n->next) {
            edge_sub_t *sub = RT_CONTAINER_OF(n, edge_sub_t, channel_link);
            if (sub->known && !sub->replaying)
                any = sub->probe = 1;
        }
        if (any)
            channel_fill(ch);
    }
}

void edge_channel_unsubscribe(edge_sub_t *sub)
{
    edge_channel_t *ch = sub->channel;
    h2o_linklist_unlink(&sub->channel_link);
    h2o_linklist_unlink(&sub->client_link);
    sub->client->nsubs--;
    drop_held(sub);
    free(sub);
    if (--ch->nsubs == 0)
        channel_destroy(ch);
}

void edge_client_unsubscribe_all(edge_client_t *client)
{
    while (!h2o_linklist_is_empty(&client->subs))
        edge_channel_unsubscribe(RT_CONTAINER_OF(client->subs.next, edge_sub_t, client_link));
}
