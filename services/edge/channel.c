/* channel.c: the thread's channel table.  A channel exists while a local
 * client is subscribed to it, and holds the thread's NATS subscription to the
 * channel's fan-out subject for exactly that long. */
#include "edge.h"
#include "rt/log.h"

#include <stdlib.h>
#include <string.h>

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
    edge_metrics_observe_latency(t, m.pb->ts_ms);
    /* Delivery may unsubscribe a client (slow consumer), so walk with a saved next. */
    for (h2o_linklist_t *node = ch->subs.next, *next; node != &ch->subs; node = next) {
        next = node->next;
        edge_sub_t *sub = RT_CONTAINER_OF(node, edge_sub_t, channel_link);
        sub->client->ops->deliver(sub->client, ch, &m);
    }
Exit:
    edge_frame_release(m.ws);
    edge_frame_release(m.sse);
    if (m.pb != NULL)
        rtsync__v1__channel_message__free_unpacked(m.pb, NULL);
}

static int channel_create(edge_thread_t *t, const char *name, edge_channel_t **out)
{
    edge_channel_t *ch = rt_xcalloc(1, sizeof(*ch));
    ch->thread = t;
    ch->name = rt_xstrdup(name);
    h2o_linklist_init_anchor(&ch->subs);
    char subject[160];
    rt_bus_subject(subject, sizeof(subject), "rt.ch", name);
    int err = rt_bus_subscribe(t->server->bus, t->loop, subject, NULL, on_channel_message, ch, &ch->bus_sub);
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

int edge_channel_subscribe(edge_thread_t *t, edge_client_t *client, const char *name, edge_sub_t **out)
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
    h2o_linklist_insert(&ch->subs, &sub->channel_link);
    h2o_linklist_insert(&client->subs, &sub->client_link);
    ch->nsubs++;
    client->nsubs++;
    *out = sub;
    return RT_OK;
}

void edge_channel_unsubscribe(edge_sub_t *sub)
{
    edge_channel_t *ch = sub->channel;
    h2o_linklist_unlink(&sub->channel_link);
    h2o_linklist_unlink(&sub->client_link);
    sub->client->nsubs--;
    free(sub);
    if (--ch->nsubs == 0)
        channel_destroy(ch);
}

void edge_client_unsubscribe_all(edge_client_t *client)
{
    while (!h2o_linklist_is_empty(&client->subs))
        edge_channel_unsubscribe(RT_CONTAINER_OF(client->subs.next, edge_sub_t, client_link));
}
