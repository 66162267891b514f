/* test_json.c: the tree-free JSON check agrees with jansson; the writer's output reads back. */
#include "rt/json.h"
#include "unit.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int check(const char *text)
{
    return rt_json_check(text, strlen(text));
}

/* Both verdicts, so that a case cannot pass by the check alone. */
static void expect(const char *text, int valid)
{
    CU_ASSERT_EQUAL(check(text), valid ? RT_OK : RT_EINVAL);
    json_t *v = json_loadb(text, strlen(text), JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CU_ASSERT_EQUAL(v != NULL, valid);
    json_decref(v);
}

static void test_check_agrees_with_jansson(void)
{
    static const char *const valid[] = {
        "0",
        "-0",
        "1.5e-3",
        "-12E+2",
        "true",
        "false",
        "null",
        "\"\"",
        " \"a\\\"\\\\\\/\\b\\f\\n\\r\\t\" ",
        "\"\\u00e9\\uD83D\\uDE00\"",
        "\"\xc3\xa9\xf0\x9f\x98\x80\"",
        "\"\\u0000\"",
        "[]",
        "{}",
        "[1,[2,{\"a\":[]}]]",
        "{\"a\":1,\"b\":{\"c\":null},\"d\":[true,false]}",
        "\n{ \"k\" : \"v\" , \"n\" : [ 1 , 2 ] }\t",
    };
    static const char *const invalid[] = {
        "",
        " ",
        "01",
        "1.",
        ".5",
        "-",
        "1e",
        "+1",
        "tru",
        "nulll",
        "\"abc",
        "\"a\nb\"",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\uDE00\"",
        "\"\\uD83D\"",
        "\"\\uD83Dx\"",
        "\"\\uD83D\\u0041\"",
        "\"\xc3\"",
        "\"\xc0\xaf\"",
        "\"\xed\xa0\x80\"",
        "[1,]",
        "[,1]",
        "{\"a\"}",
        "{\"a\":}",
        "{a:1}",
        "{\"a\":1,}",
        "{1:2}",
        "[1 2]",
        "[1]]",
        "{\"a\":1}}",
        "[",
        "{",
        "1 2",
        "[1}",
        "{\"a\":1]",
    };
    for (size_t i = 0; i < RT_ARRAY_SIZE(valid); i++)
        expect(valid[i], 1);
    for (size_t i = 0; i < RT_ARRAY_SIZE(invalid); i++)
        expect(invalid[i], 0);
}

static char *nested(size_t depth)
{
    char *s = malloc(2 * depth + 1);
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    s[2 * depth] = 0;
    return s;
}

static void test_check_depth(void)
{
    char *deepest = nested(RT_JSON_MAX_DEPTH), *deeper = nested(RT_JSON_MAX_DEPTH + 1);
    CU_ASSERT_EQUAL(check(deepest), RT_OK);
    CU_ASSERT_EQUAL(check(deeper), RT_EINVAL);
    /* the deepest value still reads in jansson inside one more object */
    rt_buf_t b = {0};
    rt_buf_append_byte(&b, '{');
    rt_json_field_raw(&b, "data", deepest, strlen(deepest));
    rt_buf_append_byte(&b, '}');
    json_t *v = json_loadb((const char *)b.data, b.len, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL(v);
    json_decref(v);
    rt_buf_dispose(&b);
    free(deepest);
    free(deeper);
}

static void test_writer_reads_back(void)
{
    const char odd[] = "q\"b\\s/\x01\x1f\n\t\xc3\xa9";
    rt_buf_t b = {0};
    rt_buf_append_byte(&b, '{');
    rt_json_field_str(&b, "s", odd);
    rt_json_field_int(&b, "n", -9007199254740993);
    rt_json_field_raw(&b, "r", "[1,{\"x\":null}]", 14);
    rt_buf_append_byte(&b, '}');
    CU_ASSERT_EQUAL(rt_json_check(b.data, b.len), RT_OK);
    json_t *v = json_loadb((const char *)b.data, b.len, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(v, "s")), odd);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(v, "n")), -9007199254740993);
    CU_ASSERT(json_is_null(json_object_get(json_array_get(json_object_get(v, "r"), 1), "x")));
    CU_ASSERT_EQUAL(json_object_size(v), 3);
    json_decref(v);
    rt_buf_dispose(&b);
    rt_json_append_string(&b, NULL, 0); /* an empty slice may have no bytes at all */
    CU_ASSERT(b.len == 2 && memcmp(b.data, "\"\"", 2) == 0);
    rt_buf_dispose(&b);
}

void test_json_register(void)
{
    static const CU_TestInfo tests[] = {
        {"check_agrees_with_jansson", test_check_agrees_with_jansson},
        {"check_depth", test_check_depth},
        {"writer_reads_back", test_writer_reads_back},
        CU_TEST_INFO_NULL,
    };
    unit_add_suite("json", tests);
}
