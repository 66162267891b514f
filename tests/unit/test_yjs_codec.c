/* test_yjs_codec.c: lib0 primitives and `any` canonical forms (spec §1), and
 * rejection of malformed updates. */
#include "../../shared/src/yjs/yjs_int.h"
#include "rt/yjs.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static void hex_to(const char *hex, rt_buf_t *out)
{
    for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) {
        char b[3] = {hex[i], hex[i + 1], 0};
        rt_buf_append_byte(out, (uint8_t)strtoul(b, NULL, 16));
    }
}

static bool buf_is(const rt_buf_t *b, const char *hex)
{
    rt_buf_t want = {0};
    hex_to(hex, &want);
    bool eq = want.len == b->len && memcmp(want.data, b->data, b->len) == 0;
    rt_buf_dispose(&want);
    return eq;
}

static void test_varuint(void)
{
    static const struct {
        uint64_t v;
        const char *hex;
    } cases[] = {{0, "00"}, {127, "7f"}, {128, "8001"}, {300, "ac02"}, {4294967295u, "ffffffff0f"}};
    for (size_t i = 0; i < RT_ARRAY_SIZE(cases); i++) {
        rt_buf_t b = {0};
        ywrite_varuint(&b, cases[i].v);
        CU_ASSERT(buf_is(&b, cases[i].hex));
        yreader_t r;
        yreader_init(&r, (rt_slice_t){b.data, b.len});
        uint64_t v = 1;
        CU_ASSERT_EQUAL(yread_varuint(&r, &v), 0);
        CU_ASSERT_EQUAL(v, cases[i].v);
        rt_buf_dispose(&b);
    }
    /* truncated, too long, beyond 2^53 */
    static const char *bad[] = {"80", "ffffffffffffffffff01", "ffffffffffffffff7f"};
    for (size_t i = 0; i < RT_ARRAY_SIZE(bad); i++) {
        rt_buf_t b = {0};
        hex_to(bad[i], &b);
        yreader_t r;
        yreader_init(&r, (rt_slice_t){b.data, b.len});
        uint64_t v;
        CU_ASSERT_EQUAL(yread_varuint(&r, &v), RT_EINVAL);
        rt_buf_dispose(&b);
    }
}

static void test_varint(void)
{
    static const struct {
        uint64_t mag;
        bool neg;
        const char *hex;
    } cases[] = {{1, false, "01"},  {1, true, "41"},  {63, false, "3f"},    {64, false, "8001"},
                 {64, true, "c001"}, {65, true, "c101"}, {1000, false, "a80f"}, {0, true, "40"}};
    for (size_t i = 0; i < RT_ARRAY_SIZE(cases); i++) {
        rt_buf_t b = {0};
        ywrite_varint(&b, cases[i].mag, cases[i].neg);
        CU_ASSERT(buf_is(&b, cases[i].hex));
        yreader_t r;
        yreader_init(&r, (rt_slice_t){b.data, b.len});
        uint64_t mag;
        bool neg;
        CU_ASSERT_EQUAL(yread_varint(&r, &mag, &neg), 0);
        CU_ASSERT_EQUAL(mag, cases[i].mag);
        CU_ASSERT_EQUAL(neg, cases[i].neg);
        rt_buf_dispose(&b);
    }
}

/* canon(in) == out: what readAny + writeAny does to a value. */
static void check_canon(const char *in, const char *out)
{
    rt_buf_t b = {0}, c = {0};
    hex_to(in, &b);
    yreader_t r;
    yreader_init(&r, (rt_slice_t){b.data, b.len});
    CU_ASSERT_EQUAL(yany_canon(&r, &c, 0), 0);
    CU_ASSERT_EQUAL(yreader_left(&r), 0);
    CU_ASSERT(buf_is(&c, out));
    rt_buf_dispose(&b);
    rt_buf_dispose(&c);
}

static void test_any(void)
{
    check_canon("770768c3a9f09f9880", "770768c3a9f09f9880"); /* "hé😀" */
    check_canon("760101617d01", "760101617d01");             /* {a:1} */
    check_canon("75027d01770161", "75027d01770161");         /* [1,"a"] */
    check_canon("7c3fc00000", "7c3fc00000");                 /* 1.5 stays float32 */
    check_canon("7b3ff0000000000000", "7d01");               /* 1.0 as float64 -> integer */
    check_canon("7c53800000", "7c53800000");                 /* 2^40 */
    /* {b:1, "1":2} -> index keys first, like Object.keys */
    check_canon("76020162" "7d01" "0131" "7d02", "76020131" "7d02" "0162" "7d01");
    /* duplicate key: first position, last value */
    check_canon("76030161" "7d01" "0162" "7d02" "0161" "7d03", "76020161" "7d03" "0162" "7d02");
}

static void test_any_rejects(void)
{
    static const char *bad[] = {
        "73",             /* tag below 116 */
        "7702c3",         /* string longer than the input */
        "7701ff",         /* invalid UTF-8 */
        "75ff7f",         /* array count beyond the input */
        "7c3fc000",       /* truncated float */
    };
    for (size_t i = 0; i < RT_ARRAY_SIZE(bad); i++) {
        rt_buf_t b = {0}, c = {0};
        hex_to(bad[i], &b);
        yreader_t r;
        yreader_init(&r, (rt_slice_t){b.data, b.len});
        CU_ASSERT_EQUAL(yany_canon(&r, &c, 0), RT_EINVAL);
        rt_buf_dispose(&b);
        rt_buf_dispose(&c);
    }
    /* nesting deeper than RT_YJS_MAX_DEPTH */
    rt_buf_t deep = {0}, c = {0};
    for (int i = 0; i < RT_YJS_MAX_DEPTH + 8; i++) {
        rt_buf_append_byte(&deep, 0x75);
        rt_buf_append_byte(&deep, 0x01);
    }
    rt_buf_append_byte(&deep, 0x7e);
    yreader_t r;
    yreader_init(&r, (rt_slice_t){deep.data, deep.len});
    CU_ASSERT_EQUAL(yany_canon(&r, &c, 0), RT_EINVAL);
    rt_buf_dispose(&deep);
    rt_buf_dispose(&c);
}

static void test_json_canon(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {" { \"b\" : 1.50 , \"1\" : [ true, null ] } ", "{\"1\":[true,null],\"b\":1.5}"},
        {"\"\\u00e9\\ud83d\\ude00\"", "\"\xc3\xa9\xf0\x9f\x98\x80\""},
        {"\"\\ud800\"", "\"\\ud800\""},
        {"1e21", "1e+21"},
        {"0.0000001", "1e-7"},
        {"-0", "0"},
        {"123456789012", "123456789012"},
    };
    for (size_t i = 0; i < RT_ARRAY_SIZE(cases); i++) {
        rt_buf_t b = {0};
        CU_ASSERT_EQUAL(yjson_canon((rt_slice_t){(const uint8_t *)cases[i].in, strlen(cases[i].in)}, &b, false), 0);
        CU_ASSERT(b.len == strlen(cases[i].out) && memcmp(b.data, cases[i].out, b.len) == 0);
        rt_buf_dispose(&b);
    }
    rt_buf_t b = {0};
    CU_ASSERT_EQUAL(yjson_canon(RT_SLICE_LIT("{\"a\":}"), &b, false), RT_EINVAL);
    CU_ASSERT_EQUAL(yjson_canon(RT_SLICE_LIT("undefined"), &b, false), RT_EINVAL);
    CU_ASSERT_EQUAL(yjson_canon(RT_SLICE_LIT("undefined"), &b, true), 0);
    rt_buf_dispose(&b);
}

static void test_update_rejects(void)
{
    static const char *bad[] = {
        "",                              /* empty */
        "01",                            /* truncated */
        "0103010001010174",              /* structs cut short */
        "01010100040101740261ff00",      /* invalid UTF-8 in a string */
        "0101010004010174056162",        /* string length beyond the input */
        "010101000b01017401610000",      /* content ref 11 */
        "0101010001010174000000",        /* Deleted of length 0 */
        "00ff",                          /* delete set client count beyond the input */
        "000101010001ff",                /* trailing garbage is ignored? no: see below */
        "0101010007010174070000",        /* type ref 7 does not exist */
        "01ffffffffffffffff7f01000000",  /* struct count beyond 2^53 */
    };
    for (size_t i = 0; i < RT_ARRAY_SIZE(bad); i++) {
        if (i == 8)
            continue; /* Yjs ignores trailing bytes; so do we */
        rt_buf_t b = {0};
        hex_to(bad[i], &b);
        CU_ASSERT_EQUAL(rt_yupdate_validate((rt_slice_t){b.data, b.len}), RT_EINVAL);
        rt_buf_dispose(&b);
    }
    rt_buf_t ok = {0};
    hex_to("0103010001010174018401000162c40100010101580101010001", &ok);
    CU_ASSERT_EQUAL(rt_yupdate_validate((rt_slice_t){ok.data, ok.len}), 0);
    rt_buf_dispose(&ok);
}

void test_yjs_codec_register(void)
{
    static const CU_TestInfo tests[] = {
        {"varuint", test_varuint},
        {"varint", test_varint},
        {"any", test_any},
        {"any_rejects", test_any_rejects},
        {"json_canon", test_json_canon},
        {"update_rejects", test_update_rejects},
        CU_TEST_INFO_NULL,
    };
    unit_add_suite("yjs_codec", tests);
}
