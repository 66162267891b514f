/* test_edge_guard.c: the per-user sliding window, the connection cap, and the
 * sweep that forgets users who left. */
#include "../../services/edge/edge.h"
#include "unit.h"

static edge_guard_t *guard(void)
{
    edge_config_t cfg = {.rate_limit = 3, .rate_window_ms = 1000, .max_user_conns = 2};
    edge_guard_t *g;
    CU_ASSERT_EQUAL_FATAL(edge_guard_create(&cfg, &g), RT_OK);
    return g;
}

static void test_sliding_window(void)
{
    edge_guard_t *g = guard();
    int64_t retry = 0, t = 1000000;
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(edge_guard_rate(g, "u", t, &retry), RT_OK);
    CU_ASSERT_EQUAL(edge_guard_rate(g, "u", t + 10, &retry), RT_ETOOBIG);
    CU_ASSERT(retry > 0 && retry <= 1000);
    CU_ASSERT_EQUAL(edge_guard_rate(g, "other", t + 10, &retry), RT_OK); /* per user */
    /* half of the previous window still counts: 3 * 0.5 = 1.5 used, so one more fits, not two */
    CU_ASSERT_EQUAL(edge_guard_rate(g, "u", t + 1500, &retry), RT_OK);
    CU_ASSERT_EQUAL(edge_guard_rate(g, "u", t + 1500, &retry), RT_ETOOBIG);
    /* two windows later nothing counts */
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(edge_guard_rate(g, "u", t + 4000, &retry), RT_OK);
    edge_guard_destroy(g);
    edge_guard_destroy(NULL);
}

static void test_connections_and_sweep(void)
{
    edge_guard_t *g = guard();
    int64_t retry, t = 2000000;
    CU_ASSERT_EQUAL(edge_guard_conn_open(g, "u"), RT_OK);
    CU_ASSERT_EQUAL(edge_guard_conn_open(g, "u"), RT_OK);
    CU_ASSERT_EQUAL(edge_guard_conn_open(g, "u"), RT_ETOOBIG);
    edge_guard_conn_close(g, "u");
    CU_ASSERT_EQUAL(edge_guard_conn_open(g, "u"), RT_OK);
    CU_ASSERT_EQUAL(edge_guard_rate(g, "http-only", t, &retry), RT_OK);
    CU_ASSERT_EQUAL(edge_guard_tracked(g), 2);
    edge_guard_sweep(g, t + 500); /* windows not over, a connection open: both kept */
    CU_ASSERT_EQUAL(edge_guard_tracked(g), 2);
    edge_guard_sweep(g, t + 2000); /* the HTTP-only user is forgotten; "u" still connected */
    CU_ASSERT_EQUAL(edge_guard_tracked(g), 1);
    edge_guard_conn_close(g, "u");
    edge_guard_conn_close(g, "u");
    edge_guard_sweep(g, t + 2000);
    CU_ASSERT_EQUAL(edge_guard_tracked(g), 0);
    edge_guard_destroy(g);
}

void test_edge_guard_register(void)
{
    static const CU_TestInfo tests[] = {
        {"sliding_window", test_sliding_window},
        {"connections_and_sweep", test_connections_and_sweep},
        CU_TEST_INFO_NULL,
    };
    unit_add_suite("edge_guard", tests);
}
