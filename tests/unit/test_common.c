/* test_common.c: the growable buffer and error names. */
#include "rt/common.h"
#include "unit.h"

#include <string.h>

static void test_buf_append_and_consume(void)
{
    rt_buf_t b = {0};
    for (int i = 0; i < 1000; i++)
        rt_buf_append(&b, "ab", 2);
    CU_ASSERT_EQUAL(b.len, 2000);
    rt_buf_printf(&b, "%d-%s", 42, "x");
    CU_ASSERT_EQUAL(b.len, 2004);
    CU_ASSERT(memcmp(b.data + 2000, "42-x", 4) == 0);
    rt_buf_consume(&b, 1999);
    CU_ASSERT_EQUAL(b.len, 5);
    CU_ASSERT(memcmp(b.data, "b42-x", 5) == 0);
    rt_buf_consume(&b, 100);
    CU_ASSERT_EQUAL(b.len, 0);
    rt_buf_dispose(&b);
    rt_buf_dispose(NULL);
    CU_ASSERT_PTR_NULL(b.data);
}

static void test_strerror(void)
{
    CU_ASSERT_STRING_EQUAL(rt_strerror(RT_EINVAL), "invalid input");
    CU_ASSERT_STRING_EQUAL(rt_strerror(12345), "unknown error");
}

void test_common_register(void)
{
    static const CU_TestInfo tests[] = {
        {"buf_append_and_consume", test_buf_append_and_consume},
        {"strerror", test_strerror},
        CU_TEST_INFO_NULL,
    };
    unit_add_suite("common", tests);
}
