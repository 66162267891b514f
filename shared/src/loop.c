/* loop.c: h2o evloop plus its multithread queue, used as a task queue. */
#include "rt/loop.h"
#include "rt/common.h"

#include <errno.h>
#include <stdlib.h>

/* Deferred tasks run together at most this long after the first, or when this many wait. */
#define DEFER_MS 20
#define DEFER_MAX 256

struct rt_loop {
    h2o_evloop_t *evloop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    h2o_linklist_t deferred; /* rt_task_t._msg.link */
    size_t ndeferred;
    h2o_timeout_t defer_timeout;
    h2o_timeout_entry_t defer_entry;
};

static void run_tasks(h2o_linklist_t *tasks)
{
    while (!h2o_linklist_is_empty(tasks)) {
        rt_task_t *task = RT_CONTAINER_OF(tasks->next, rt_task_t, _msg.link);
        h2o_linklist_unlink(&task->_msg.link);
        task->cb(task);
    }
}

static void on_tasks(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    run_tasks(messages);
}

static void run_deferred(rt_loop_t *loop)
{
    if (h2o_timeout_is_linked(&loop->defer_entry))
        h2o_timeout_unlink(&loop->defer_entry);
    loop->ndeferred = 0;
    run_tasks(&loop->deferred);
}

static void on_defer_timeout(h2o_timeout_entry_t *entry)
{
    run_deferred(RT_CONTAINER_OF(entry, rt_loop_t, defer_entry));
}

int rt_loop_create(rt_loop_t **out)
{
    rt_loop_t *loop = rt_xcalloc(1, sizeof(*loop));
    loop->evloop = h2o_evloop_create();
    loop->queue = h2o_multithread_create_queue(loop->evloop);
    h2o_multithread_register_receiver(loop->queue, &loop->receiver, on_tasks);
    h2o_linklist_init_anchor(&loop->deferred);
    h2o_timeout_init(loop->evloop, &loop->defer_timeout, DEFER_MS);
    loop->defer_entry.cb = on_defer_timeout;
    *out = loop;
    return RT_OK;
}

void rt_loop_destroy(rt_loop_t *loop)
{
    if (loop == NULL)
        return;
    /* Run what is still queued so that every task's memory is released by its owner. */
    on_tasks(&loop->receiver, &loop->receiver._messages);
    run_deferred(loop);
    h2o_timeout_dispose(loop->evloop, &loop->defer_timeout);
    h2o_multithread_unregister_receiver(loop->queue, &loop->receiver);
    h2o_multithread_destroy_queue(loop->queue);
    h2o_evloop_destroy(loop->evloop);
    free(loop->queue); /* h2o's evloop backend closes the queue's pipe but leaves the struct to us */
    free(loop);
}

h2o_evloop_t *rt_loop_evloop(rt_loop_t *loop)
{
    return loop->evloop;
}

void rt_loop_run_once(rt_loop_t *loop, int32_t max_wait_ms)
{
    /* h2o_evloop_run returns -1 on EINTR; the next iteration simply goes on. */
    h2o_evloop_run(loop->evloop, max_wait_ms);
}

void rt_loop_post(rt_loop_t *loop, rt_task_t *task)
{
    h2o_multithread_send_message(&loop->receiver, &task->_msg);
}

void rt_loop_defer(rt_loop_t *loop, rt_task_t *task)
{
    h2o_linklist_insert(&loop->deferred, &task->_msg.link);
    if (++loop->ndeferred >= DEFER_MAX)
        run_deferred(loop);
    else if (!h2o_timeout_is_linked(&loop->defer_entry))
        h2o_timeout_link(loop->evloop, &loop->defer_timeout, &loop->defer_entry);
}
