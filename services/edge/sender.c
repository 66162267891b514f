/*
 * sender.c: the socket writes of a loop turn, given to the kernel together.
 *
 * A fan-out writes to every subscriber's socket, one write each.  In a
 * virtual machine the system call around a small write costs about as much
 * as the TCP work inside it (on the bench machine a loopback write of 100
 * bytes took 5.5 us alone and 3.0 us in a batch of io_uring sends), so the
 * flush queues its writes here and edge_sender_run submits them with one
 * io_uring_enter per batch.  Every send carries MSG_DONTWAIT: the kernel
 * completes it while it is submitted (all sent, part sent or -EAGAIN, never
 * parked until writable), so the batch is over when edge_sender_run returns
 * and no buffer is referred to after it.  A socket that did not take
 * everything is the caller's to finish through h2o, which waits for it.
 */
#include "edge.h"

#include <assert.h>
#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#define SENDER_ENTRIES 256
#define NO_ANSWER INT64_MIN

typedef struct sender_slot {
    void *owner;
    int64_t res; /* bytes sent or -errno; NO_ANSWER until the completion comes */
    size_t nvecs;
    struct msghdr msg;
    struct iovec vecs[EDGE_SENDER_VECS];
} sender_slot_t;

struct edge_sender {
    struct io_uring ring;
    edge_sender_cb cb;
    unsigned queued;
    sender_slot_t slots[SENDER_ENTRIES];
};

static int ring_init(struct io_uring *ring)
{
    /* One thread submits and reaps: the kernel can skip what sharing would need
     * (Linux 6.1; an older kernel refuses the flags and gets a plain ring). */
    int rc = io_uring_queue_init(SENDER_ENTRIES, ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
    if (rc == -EINVAL)
        rc = io_uring_queue_init(SENDER_ENTRIES, ring, 0);
    return rc;
}

int edge_sender_create(edge_sender_cb cb, edge_sender_t **out)
{
    *out = NULL;
    edge_sender_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    int rc = ring_init(&s->ring);
    if (rc < 0) {
        free(s);
        return rc;
    }
    s->cb = cb;
    *out = s;
    return 0;
}

void edge_sender_destroy(edge_sender_t *s)
{
    if (s == NULL)
        return;
    io_uring_queue_exit(&s->ring); /* discards what a failed submit left in it */
    free(s);
}

int edge_sender_full(const edge_sender_t *s)
{
    return s->queued == SENDER_ENTRIES;
}

struct iovec *edge_sender_vecs(edge_sender_t *s)
{
    assert(!edge_sender_full(s));
    return s->slots[s->queued].vecs;
}

void edge_sender_queue(edge_sender_t *s, int fd, size_t n, void *owner)
{
    assert(!edge_sender_full(s) && n > 0 && n <= EDGE_SENDER_VECS);
    unsigned i = s->queued++;
    sender_slot_t *slot = &s->slots[i];
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    assert(sqe != NULL); /* the ring has an entry for every slot */
    slot->owner = owner;
    slot->nvecs = n;
    slot->res = NO_ANSWER;
    if (n == 1) {
        io_uring_prep_send(sqe, fd, slot->vecs[0].iov_base, slot->vecs[0].iov_len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } else {
        slot->msg = (struct msghdr){.msg_iov = slot->vecs, .msg_iovlen = n};
        io_uring_prep_sendmsg(sqe, fd, &slot->msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    io_uring_sqe_set_data64(sqe, i);
}

/* Submits the batch and files each completion in its slot.  After a failure
 * the ring is not used again (sends may still sit in it; destroying it
 * discards them): a send the kernel never took counts as refused (-EAGAIN,
 * h2o retries it), one it took without an answer as failed (-EIO), since
 * whether its bytes went out is unknown. */
static int submit(edge_sender_t *s)
{
    int submitted = io_uring_submit_and_wait(&s->ring, s->queued);
    int rc = submitted < 0 ? submitted : 0;
    for (int seen = 0; seen < submitted;) {
        struct io_uring_cqe *cqe;
        rc = io_uring_wait_cqe(&s->ring, &cqe);
        if (rc == -EINTR)
            continue;
        if (rc < 0)
            break;
        s->slots[io_uring_cqe_get_data64(cqe)].res = cqe->res;
        io_uring_cqe_seen(&s->ring, cqe);
        seen++;
    }
    if (rc == 0 && (unsigned)submitted < s->queued)
        rc = -EIO;
    for (unsigned i = 0; rc < 0 && i < s->queued; i++)
        if (s->slots[i].res == NO_ANSWER)
            s->slots[i].res = (int)i < submitted ? -EIO : -EAGAIN;
    return rc;
}

int edge_sender_run(edge_sender_t *s)
{
    unsigned n = s->queued;
    if (n == 0)
        return 0;
    int rc = submit(s);
    s->queued = 0;
    /* The batch is over before the first callback, which may queue again. */
    for (unsigned i = 0; i < n; i++)
        s->cb(s->slots[i].owner, s->slots[i].vecs, s->slots[i].nvecs, s->slots[i].res);
    return rc < 0 ? rc : (int)n;
}
