/* history.c: queries to chat-history (rt.hist.query), for resumes, gap fills
 * and the HTTP history API. */
#include "edge.h"
#include "rt/log.h"

#include <stdlib.h>

typedef struct history_wait {
    edge_history_cb cb;
    void *ctx;
} history_wait_t;

static void on_history_reply(void *ctx, int err, rt_slice_t data)
{
    history_wait_t w = *(history_wait_t *)ctx;
    free(ctx);
    if (err != RT_OK) {
        w.cb(w.ctx, err, NULL);
        return;
    }
    Rtsync__V1__HistoryReply *reply = rtsync__v1__history_reply__unpack(NULL, data.len, data.data);
    if (reply == NULL || reply->status == NULL || reply->status->code != RTSYNC__V1__CODE__CODE_OK) {
        if (reply == NULL)
            RT_LOG_WARN("bus_bad_reply", "subject=rt.hist.query bytes=%zu", data.len);
        err = reply != NULL && reply->status != NULL && reply->status->code == RTSYNC__V1__CODE__CODE_BAD_REQUEST
                  ? RT_EINVAL
                  : RT_EUNAVAIL;
        if (reply != NULL)
            rtsync__v1__history_reply__free_unpacked(reply, NULL);
        w.cb(w.ctx, err, NULL);
        return;
    }
    w.cb(w.ctx, RT_OK, reply);
    rtsync__v1__history_reply__free_unpacked(reply, NULL);
}

void edge_history_query(edge_thread_t *t, const char *channel, int before, uint64_t cursor, uint32_t limit,
                        edge_history_cb cb, void *ctx)
{
    Rtsync__V1__HistoryRequest req = RTSYNC__V1__HISTORY_REQUEST__INIT;
    req.channel = (char *)channel;
    req.limit = limit;
    if (before) {
        req.cursor_case = RTSYNC__V1__HISTORY_REQUEST__CURSOR_BEFORE;
        req.before = cursor;
    } else {
        req.cursor_case = RTSYNC__V1__HISTORY_REQUEST__CURSOR_AFTER;
        req.after = cursor;
    }
    uint8_t buf[256];
    size_t len = rtsync__v1__history_request__pack(&req, buf);
    history_wait_t *w = rt_xmalloc(sizeof(*w));
    *w = (history_wait_t){cb, ctx};
    int err = rt_bus_request(t->requester, "rt.hist.query", buf, len, on_history_reply, w);
    if (err != RT_OK) {
        free(w);
        cb(ctx, err, NULL);
    }
}
