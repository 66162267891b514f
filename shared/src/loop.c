/* loop.c: h2o evloop plus its multithread queue, used as a task queue. */
#include "rt/loop.h"
#include "rt/common.h"

#include <errno.h>
#include <stdlib.h>

struct rt_loop {
    h2o_evloop_t *evloop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
};

static void on_tasks(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        rt_task_t *task = RT_CONTAINER_OF(messages->next, rt_task_t, _msg.link);
        h2o_linklist_unlink(&task->_msg.link);
        task->cb(task);
    }
}

int rt_loop_create(rt_loop_t **out)
{
    rt_loop_t *loop = rt_xcalloc(1, sizeof(*loop));
    loop->evloop = h2o_evloop_create();
    loop->queue = h2o_multithread_create_queue(loop->evloop);
    h2o_multithread_register_receiver(loop->queue, &loop->receiver, on_tasks);
    *out = loop;
    return RT_OK;
}

void rt_loop_destroy(rt_loop_t *loop)
{
    if (loop == NULL)
        return;
    /* Run what is still queued so that every task's memory is released by its owner. */
    on_tasks(&loop->receiver, &loop->receiver._messages);
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
