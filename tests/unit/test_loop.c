/* test_loop.c: the loop's task queue and its deferred tasks. */
#include "rt/common.h"
#include "rt/loop.h"
#include "unit.h"

#include <stdlib.h>

typedef struct counted_task {
    rt_task_t task;
    int *runs;
} counted_task_t;

static void on_counted(rt_task_t *task)
{
    counted_task_t *t = (counted_task_t *)task;
    ++*t->runs;
    free(t);
}

/* Posts (or defers) n tasks, each counting its run in *runs. */
static void post_counted(rt_loop_t *loop, int *runs, int n, int deferred)
{
    for (int i = 0; i < n; i++) {
        counted_task_t *t = rt_xcalloc(1, sizeof(*t));
        t->task.cb = on_counted;
        t->runs = runs;
        if (deferred)
            rt_loop_defer(loop, &t->task);
        else
            rt_loop_post(loop, &t->task);
    }
}

static void run_for_ms(rt_loop_t *loop, uint64_t ms)
{
    uint64_t until = rt_now_mono_ns() + ms * 1000000u;
    while (rt_now_mono_ns() < until)
        rt_loop_run_once(loop, 5);
}

static void test_posted_tasks_run(void)
{
    rt_loop_t *loop;
    rt_loop_create(&loop);
    int runs = 0;
    post_counted(loop, &runs, 3, 0);
    run_for_ms(loop, 20);
    CU_ASSERT_EQUAL(runs, 3);
    post_counted(loop, &runs, 1, 0);
    rt_loop_destroy(loop); /* runs what is still queued */
    CU_ASSERT_EQUAL(runs, 4);
    rt_loop_destroy(NULL);
}

static void test_deferred_tasks_run_together_later(void)
{
    rt_loop_t *loop;
    rt_loop_create(&loop);
    int runs = 0;
    post_counted(loop, &runs, 5, 1);
    CU_ASSERT_EQUAL(runs, 0); /* not from within the call */
    rt_loop_run_once(loop, 0);
    CU_ASSERT_EQUAL(runs, 0); /* not at the end of the turn either */
    run_for_ms(loop, 60);
    CU_ASSERT_EQUAL(runs, 5);
    post_counted(loop, &runs, 1, 1);
    run_for_ms(loop, 60); /* a later one gets its own timer */
    CU_ASSERT_EQUAL(runs, 6);
    rt_loop_destroy(loop);
}

static void test_deferred_tasks_bounded_and_run_at_destroy(void)
{
    rt_loop_t *loop;
    rt_loop_create(&loop);
    int runs = 0;
    post_counted(loop, &runs, 256, 1);
    CU_ASSERT_EQUAL(runs, 256); /* the 256th runs them all at once */
    post_counted(loop, &runs, 7, 1);
    CU_ASSERT_EQUAL(runs, 256);
    rt_loop_destroy(loop); /* nothing leaks (the ASan run checks) */
    CU_ASSERT_EQUAL(runs, 263);
}

void test_loop_register(void)
{
    static const CU_TestInfo tests[] = {
        {"posted_tasks_run", test_posted_tasks_run},
        {"deferred_tasks_run_together_later", test_deferred_tasks_run_together_later},
        {"deferred_tasks_bounded_and_run_at_destroy", test_deferred_tasks_bounded_and_run_at_destroy},
        CU_TEST_INFO_NULL,
    };
    unit_add_suite("loop", tests);
}
