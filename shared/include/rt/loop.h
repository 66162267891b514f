/*
 * rt/loop.h: an h2o event loop with a cross-thread task queue.
 *
 * Every service thread that owns state runs one rt_loop.  Other threads (cnats
 * callbacks above all) never touch that state: they post a task, and the task
 * runs on the loop's thread.
 */
#ifndef RT_LOOP_H
#define RT_LOOP_H

#include <h2o.h>
#include <stdint.h>

typedef struct rt_loop rt_loop_t;
typedef struct rt_task rt_task_t;
typedef void (*rt_task_cb)(rt_task_t *task);

/* A unit of work for a loop; embed it in your own struct. */
struct rt_task {
    h2o_multithread_message_t _msg;
    rt_task_cb cb;
};

/* Returns an owned loop in *out.  Call from the thread that will run it. */
int rt_loop_create(rt_loop_t **out);
/* Accepts NULL.  Tasks still queued run first; no other thread may post any more. */
void rt_loop_destroy(rt_loop_t *loop);
/* Borrowed h2o loop, for sockets and timeouts. */
h2o_evloop_t *rt_loop_evloop(rt_loop_t *loop);
/* Runs one iteration, waiting at most max_wait_ms; an interrupted wait is not an error. */
void rt_loop_run_once(rt_loop_t *loop, int32_t max_wait_ms);
/* Any thread: queues task->cb to run on the loop's thread; the callback owns the task. */
void rt_loop_post(rt_loop_t *loop, rt_task_t *task);
/* Loop thread: runs task->cb (which owns the task) on this loop within 20 ms, together
 * with every task deferred meanwhile; at the latest in rt_loop_destroy.  For work that
 * costs per call rather than per item. */
void rt_loop_defer(rt_loop_t *loop, rt_task_t *task);

#endif
