/* test_yjs_doc.c: the document engine against bytes produced by Yjs 13.6.33
 * (spec §3.6 worked example, pending updates, conflicts, maps, GC, the
 * update algebra). */
#include "rt/yjs.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static rt_buf_t hex(const char *h)
{
    rt_buf_t out = {0};
    for (size_t i = 0; h[i] && h[i + 1]; i += 2) {
        char b[3] = {h[i], h[i + 1], 0};
        rt_buf_append_byte(&out, (uint8_t)strtoul(b, NULL, 16));
    }
    return out;
}

static bool eq_hex(const rt_buf_t *b, const char *h)
{
    rt_buf_t want = hex(h);
    bool eq = want.len == b->len && (b->len == 0 || memcmp(want.data, b->data, b->len) == 0);
    rt_buf_dispose(&want);
    return eq;
}

static bool eq_str(const rt_buf_t *b, const char *s)
{
    return b->len == strlen(s) && memcmp(b->data, s, b->len) == 0;
}

/* Applies a hex update; returns rc and the changed update in *changed. */
static int apply_hex(rt_ydoc_t *doc, const char *h, rt_buf_t *changed)
{
    rt_buf_t u = hex(h);
    int rc = rt_ydoc_apply_update(doc, (rt_slice_t){u.data, u.len}, changed);
    rt_buf_dispose(&u);
    return rc;
}

static bool state_is(rt_ydoc_t *doc, const char *h)
{
    rt_buf_t s = {0};
    rt_ydoc_encode_state_as_update(doc, (rt_slice_t){0}, &s);
    bool eq = eq_hex(&s, h);
    rt_buf_dispose(&s);
    return eq;
}

static const char *WORKED[] = {"010101000401017402616200", "01010102c401000101015800",
                               "000101010001"};
static const char *WORKED_STATE = "0103010001010174018401000162c40100010101580101010001";

static void test_worked_example(void)
{
    rt_ydoc_t *doc;
    CU_ASSERT_EQUAL(rt_ydoc_create(&doc), 0);
    for (size_t i = 0; i < 3; i++) {
        rt_buf_t ch = {0};
        CU_ASSERT_EQUAL(apply_hex(doc, WORKED[i], &ch), 0);
        CU_ASSERT(eq_hex(&ch, WORKED[i])); /* the event re-encodes the same bytes */
        rt_buf_dispose(&ch);
    }
    CU_ASSERT(state_is(doc, WORKED_STATE));
    rt_buf_t sv = {0}, json = {0};
    rt_ydoc_encode_state_vector(doc, &sv);
    CU_ASSERT(eq_hex(&sv, "010103"));
    CU_ASSERT_EQUAL(rt_ydoc_to_json(doc, NULL, 0, &json), 0);
    CU_ASSERT(eq_str(&json, "{\"t\":\"Xb\"}"));
    /* a duplicate changes nothing and emits nothing */
    rt_buf_t ch = {0};
    CU_ASSERT_EQUAL(apply_hex(doc, WORKED_STATE, &ch), 0);
    CU_ASSERT_EQUAL(ch.len, 0);
    CU_ASSERT(rt_ydoc_memory_usage(doc) > 0);
    rt_buf_dispose(&sv);
    rt_buf_dispose(&json);
    rt_ydoc_destroy(doc);
    rt_ydoc_destroy(NULL);
}

/* Applies a hex update in kept mode; returns whether it changed the document. */
static bool apply_kept_hex(rt_ydoc_t *doc, const char *h)
{
    rt_buf_t u = hex(h);
    bool changed = true;
    CU_ASSERT_EQUAL(rt_ydoc_apply_update_kept(doc, (rt_slice_t){u.data, u.len}, &changed), 0);
    rt_buf_dispose(&u);
    return changed;
}

/* Applies `taken` to a document holding the updates `base` and checks its content. */
static void check_taken(const char *const *base, size_t n_base, const rt_buf_t *taken, const char *json_want)
{
    rt_ydoc_t *copy;
    rt_ydoc_create(&copy);
    for (size_t i = 0; i < n_base; i++)
        apply_hex(copy, base[i], NULL);
    CU_ASSERT_EQUAL(rt_ydoc_apply_update(copy, (rt_slice_t){taken->data, taken->len}, NULL), 0);
    rt_buf_t json = {0};
    CU_ASSERT_EQUAL(rt_ydoc_to_json(copy, NULL, 0, &json), 0);
    CU_ASSERT(eq_str(&json, json_want));
    CU_ASSERT(!rt_ydoc_has_pending(copy));
    rt_buf_dispose(&json);
    rt_ydoc_destroy(copy);
}

static void test_kept_changes(void)
{
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    rt_buf_t taken = {0};
    /* all three as one update */
    for (size_t i = 0; i < 3; i++)
        CU_ASSERT(apply_kept_hex(doc, WORKED[i]));
    rt_ydoc_take_changes(doc, &taken);
    check_taken(NULL, 0, &taken, "{\"t\":\"Xb\"}");
    CU_ASSERT(state_is(doc, WORKED_STATE));
    /* taken: nothing is left; a duplicate changes nothing */
    taken.len = 0;
    rt_ydoc_take_changes(doc, &taken);
    CU_ASSERT_EQUAL(taken.len, 0);
    CU_ASSERT(!apply_kept_hex(doc, WORKED[1]));
    rt_ydoc_take_changes(doc, &taken);
    CU_ASSERT_EQUAL(taken.len, 0);
    rt_ydoc_destroy(doc);

    /* a pending update counts once it integrates; after a take, only what came since */
    rt_ydoc_create(&doc);
    CU_ASSERT(!apply_kept_hex(doc, WORKED[1])); /* waits for clocks 0 and 1 */
    CU_ASSERT(apply_kept_hex(doc, WORKED[0]));
    taken.len = 0;
    rt_ydoc_take_changes(doc, &taken);
    check_taken(NULL, 0, &taken, "{\"t\":\"aXb\"}");
    CU_ASSERT(apply_kept_hex(doc, WORKED[2]));
    taken.len = 0;
    rt_ydoc_take_changes(doc, &taken);
    CU_ASSERT(eq_hex(&taken, WORKED[2])); /* a deletion only */
    check_taken(WORKED, 2, &taken, "{\"t\":\"Xb\"}");
    rt_buf_dispose(&taken);
    rt_ydoc_destroy(doc);
}

/* 300 clients' inserts in one take: more than the kept scratch holds on to, so
 * the take releases it, and the next apply and take start from nothing. */
static void test_kept_many_clients(void)
{
    rt_ydoc_t *doc, *copy;
    rt_ydoc_create(&doc);
    rt_ydoc_create(&copy);
    rt_buf_t taken = {0}, sv = {0}, sv2 = {0};
    for (unsigned round = 0; round < 2; round++) {
        for (unsigned c = 1000 + 300 * round; c < 1300 + 300 * round; c++) {
            const uint8_t u[] = {1, 1, (uint8_t)(0x80 | (c & 0x7f)), (uint8_t)(c >> 7), 0, 4, 1, 1, 't', 1, 'A', 0};
            bool changed = false;
            CU_ASSERT_EQUAL(rt_ydoc_apply_update_kept(doc, (rt_slice_t){u, sizeof u}, &changed), 0);
            CU_ASSERT(changed);
        }
        taken.len = 0;
        rt_ydoc_take_changes(doc, &taken);
        CU_ASSERT_EQUAL(rt_ydoc_apply_update(copy, (rt_slice_t){taken.data, taken.len}, NULL), 0);
    }
    rt_ydoc_encode_state_vector(doc, &sv);
    rt_ydoc_encode_state_vector(copy, &sv2);
    CU_ASSERT(sv.len == sv2.len && memcmp(sv.data, sv2.data, sv.len) == 0);
    rt_buf_t json = {0};
    CU_ASSERT_EQUAL(rt_ydoc_to_json(copy, NULL, 0, &json), 0);
    CU_ASSERT_EQUAL(json.len, strlen("{\"t\":\"\"}") + 600);
    rt_buf_dispose(&json);
    rt_buf_dispose(&taken);
    rt_buf_dispose(&sv);
    rt_buf_dispose(&sv2);
    rt_ydoc_destroy(doc);
    rt_ydoc_destroy(copy);
}

static void test_out_of_order(void)
{
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    rt_buf_t ch = {0};
    CU_ASSERT_EQUAL(apply_hex(doc, WORKED[1], &ch), 0);
    CU_ASSERT_EQUAL(ch.len, 0);
    CU_ASSERT(rt_ydoc_has_pending(doc));
    /* pending structs are part of the state (but not of the state vector) */
    CU_ASSERT(state_is(doc, WORKED[1]));
    rt_buf_t sv = {0};
    rt_ydoc_encode_state_vector(doc, &sv);
    CU_ASSERT(eq_hex(&sv, "00"));
    CU_ASSERT_EQUAL(apply_hex(doc, WORKED[0], &ch), 0);
    CU_ASSERT(eq_hex(&ch, "010301000401017401618401000162c401000101015800"));
    CU_ASSERT(!rt_ydoc_has_pending(doc));
    CU_ASSERT(state_is(doc, "010301000401017401618401000162c401000101015800"));
    rt_buf_dispose(&ch);
    rt_buf_dispose(&sv);
    rt_ydoc_destroy(doc);
}

static void test_pending_delete(void)
{
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    rt_buf_t ch = {0};
    CU_ASSERT_EQUAL(apply_hex(doc, WORKED[2], &ch), 0); /* deletes an unknown item */
    CU_ASSERT_EQUAL(ch.len, 0);
    CU_ASSERT(rt_ydoc_has_pending(doc));
    CU_ASSERT_EQUAL(apply_hex(doc, WORKED[0], &ch), 0);
    CU_ASSERT(!rt_ydoc_has_pending(doc));
    rt_buf_t json = {0};
    rt_ydoc_to_json(doc, NULL, 0, &json);
    CU_ASSERT(eq_str(&json, "{\"t\":\"b\"}"));
    rt_buf_dispose(&ch);
    rt_buf_dispose(&json);
    rt_ydoc_destroy(doc);
}

static void test_conflicts(void)
{
    /* concurrent inserts at index 0: lower client goes left */
    const char *b20 = "0101140004010174014200", *a10 = "01010a0004010174014100";
    for (int order = 0; order < 2; order++) {
        rt_ydoc_t *doc;
        rt_ydoc_create(&doc);
        apply_hex(doc, order ? a10 : b20, NULL);
        apply_hex(doc, order ? b20 : a10, NULL);
        rt_buf_t json = {0};
        rt_ydoc_to_json(doc, NULL, 0, &json);
        CU_ASSERT(eq_str(&json, "{\"t\":\"AB\"}"));
        rt_buf_dispose(&json);
        rt_ydoc_destroy(doc);
    }
    /* concurrent map.set on one key: the higher client wins */
    const char *k10 = "01010a002801016d016b017d0100", *k20 = "010114002801016d016b017d0200";
    for (int order = 0; order < 2; order++) {
        rt_ydoc_t *doc;
        rt_ydoc_create(&doc);
        apply_hex(doc, order ? k10 : k20, NULL);
        apply_hex(doc, order ? k20 : k10, NULL);
        rt_buf_t json = {0};
        rt_ydoc_to_json(doc, NULL, 0, &json);
        CU_ASSERT(eq_str(&json, "{\"m\":{\"k\":2}}"));
        rt_buf_dispose(&json);
        rt_ydoc_destroy(doc);
    }
}

static const char *MAP_UPDATES[] = {"010107002801016d016b017d0100", "01010701a80700017701760107010001",
                                    "0101070208010161037d01770178760101797502787e00"};

static void test_map_array_gc(void)
{
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    for (size_t i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(apply_hex(doc, MAP_UPDATES[i], NULL), 0);
    CU_ASSERT(state_is(doc, "010307002101016d016b01a807000177017608010161037d01770178760101797502"
                            "787e0107010001"));
    rt_buf_t json = {0};
    rt_ydoc_to_json(doc, NULL, 0, &json);
    CU_ASSERT(eq_str(&json, "{\"m\":{\"k\":\"v\"},\"a\":[1,\"x\",{\"y\":[true,null]}]}"));
    json.len = 0;
    rt_ykind_hint_t hint = {"a", RT_YKIND_ARRAY};
    CU_ASSERT_EQUAL(rt_ydoc_root_to_json(doc, "a", RT_YKIND_AUTO, &json), 0);
    CU_ASSERT(eq_str(&json, "[1,\"x\",{\"y\":[true,null]}]"));
    CU_ASSERT_EQUAL(rt_ydoc_root_to_json(doc, "nope", RT_YKIND_AUTO, &json), RT_ENOTFOUND);
    json.len = 0;
    CU_ASSERT_EQUAL(rt_ydoc_to_json(doc, &hint, 1, &json), 0);
    /* hinted roots the document lacks are listed empty */
    rt_ykind_hint_t missing[] = {{"t", RT_YKIND_TEXT}, {"x", RT_YKIND_XML_FRAGMENT}, {"t", RT_YKIND_TEXT}};
    json.len = 0;
    CU_ASSERT_EQUAL(rt_ydoc_to_json(doc, missing, 3, &json), 0);
    CU_ASSERT(eq_str(&json, "{\"m\":{\"k\":\"v\"},\"a\":[1,\"x\",{\"y\":[true,null]}],\"t\":\"\",\"x\":\"\"}"));
    rt_buf_dispose(&json);
    /* state relative to a state vector {7:1} */
    rt_buf_t sv = hex("010701"), out = {0};
    CU_ASSERT_EQUAL(rt_ydoc_encode_state_as_update(doc, (rt_slice_t){sv.data, sv.len}, &out), 0);
    CU_ASSERT(eq_hex(&out, "01020701a807000177017608010161037d01770178760101797502787e0107010001"));
    rt_buf_dispose(&out);
    rt_buf_dispose(&sv);
    rt_ydoc_destroy(doc);
}

static void test_rejected_update_leaves_doc(void)
{
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    CU_ASSERT_EQUAL(apply_hex(doc, WORKED[0], NULL), 0);
    rt_buf_t ch = {0};
    /* a valid first struct followed by garbage */
    CU_ASSERT_EQUAL(apply_hex(doc, "01020102c4010001010158ff", &ch), RT_EINVAL);
    CU_ASSERT_EQUAL(ch.len, 0);
    CU_ASSERT(state_is(doc, "0101010004010174026162" "00"));
    rt_buf_dispose(&ch);
    rt_ydoc_destroy(doc);
}

static void test_update_algebra(void)
{
    rt_buf_t u[3], out = {0};
    rt_slice_t s[3];
    for (size_t i = 0; i < 3; i++) {
        u[i] = hex(MAP_UPDATES[i]);
        s[i] = (rt_slice_t){u[i].data, u[i].len};
    }
    CU_ASSERT_EQUAL(rt_yupdate_merge(s, 3, &out), 0);
    CU_ASSERT(eq_hex(&out, "010307002801016d016b017d018807000177017608010161037d01770178760101797502"
                           "787e0107010001"));
    /* merge(a, a) == a */
    rt_slice_t aa[2] = {s[0], s[0]};
    out.len = 0;
    CU_ASSERT_EQUAL(rt_yupdate_merge(aa, 2, &out), 0);
    CU_ASSERT(eq_hex(&out, MAP_UPDATES[0]));
    /* a gap gives a Skip; the state vector stops there */
    rt_slice_t gap[2] = {s[0], s[2]};
    rt_buf_t merged = {0};
    CU_ASSERT_EQUAL(rt_yupdate_merge(gap, 2, &merged), 0);
    out.len = 0;
    CU_ASSERT_EQUAL(rt_yupdate_state_vector((rt_slice_t){merged.data, merged.len}, &out), 0);
    CU_ASSERT(eq_hex(&out, "010701"));
    rt_buf_t sv = hex("010702");
    out.len = 0;
    CU_ASSERT_EQUAL(rt_yupdate_diff((rt_slice_t){merged.data, merged.len}, (rt_slice_t){sv.data, sv.len}, &out), 0);
    CU_ASSERT(eq_hex(&out, "0101070208010161037d01770178760101797502787e00"));
    rt_buf_dispose(&sv);
    rt_buf_dispose(&merged);
    rt_buf_dispose(&out);
    for (size_t i = 0; i < 3; i++)
        rt_buf_dispose(&u[i]);
}

static void test_emoji_split(void)
{
    /* "a😀b" by client 1, then diff at clock 2 cuts the surrogate pair */
    rt_buf_t u = hex("01010100040101740661f09f98806200"), sv = hex("010102"), out = {0};
    CU_ASSERT_EQUAL(rt_yupdate_diff((rt_slice_t){u.data, u.len}, (rt_slice_t){sv.data, sv.len}, &out), 0);
    CU_ASSERT(eq_hex(&out, "0101010284010104efbfbd6200"));
    rt_buf_dispose(&u);
    rt_buf_dispose(&sv);
    rt_buf_dispose(&out);
}

/* A document with text, formats, a map and XML, encoded as V2 by Yjs. */
static const char *V2_STATE =
    "000300030202450b090205000004020400520316560419040081002100a800070028000700060084008600c400"
    "4600c6312574f09f98806d6b7850636c617373626f6c646869626f6c64216974616c69636974616c6963010241"
    "020504020401460003010200020306024102010d007701767703612062787e787e0105010201";
static const char *V1_STATE =
    "010d05000401017404f09f9880810501012101016d016b01a8050301770176070101780301502800050505636c"
    "61737301770361206207000505060600050704626f6c64047472756584050802686986050a04626f6c64046e75"
    "6c6cc4050a050b0121460500066974616c69630474727565c605010502066974616c6963046e756c6c0105010202";

static void test_v2(void)
{
    rt_buf_t v2 = hex(V2_STATE), out = {0};
    CU_ASSERT_EQUAL(rt_yupdate_v2_to_v1((rt_slice_t){v2.data, v2.len}, &out), 0);
    CU_ASSERT(eq_hex(&out, "010d05000401017404f09f9880810501012101016d016b0188050301770176070101780301502800050505636c"
                           "61737301770361206207000505060600050704626f6c64047472756584050802686986050a04626f6c64046e75"
                           "6c6cc4050a050b0121460500066974616c69630474727565c605010502066974616c6963046e756c6c0105010202"));
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    CU_ASSERT_EQUAL(rt_ydoc_apply_update_v2(doc, (rt_slice_t){v2.data, v2.len}, NULL), 0);
    CU_ASSERT(state_is(doc, V1_STATE));
    rt_ykind_hint_t hints[] = {{"x", RT_YKIND_XML_FRAGMENT}};
    out.len = 0;
    CU_ASSERT_EQUAL(rt_ydoc_to_json(doc, hints, 1, &out), 0);
    CU_ASSERT(eq_str(&out, "{\"t\":\"\xf0\x9f\x98\x80\",\"m\":{\"k\":\"v\"},"
                           "\"x\":\"<p class=\\\"a b\\\"><bold>hi!</bold></p>\"}"));
    /* truncated V2 input is rejected */
    CU_ASSERT_EQUAL(rt_ydoc_apply_update_v2(doc, (rt_slice_t){v2.data, v2.len / 2}, NULL), RT_EINVAL);
    rt_buf_dispose(&v2);
    rt_buf_dispose(&out);
    rt_ydoc_destroy(doc);
}

static void test_gc_off(void)
{
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    rt_ydoc_set_gc(doc, false);
    for (size_t i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(apply_hex(doc, WORKED[i], NULL), 0);
    /* the deleted 'a' keeps its content */
    CU_ASSERT(state_is(doc, "010301000401017401618401000162c40100010101580101010001"));
    rt_ydoc_destroy(doc);
}

static void test_hostile_references(void)
{
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    CU_ASSERT_EQUAL(apply_hex(doc, WORKED[0], NULL), 0);
    /* a parent ID that names a string item: integrated as GC, like Yjs */
    rt_buf_t ch = {0};
    CU_ASSERT_EQUAL(apply_hex(doc, "0101020004000101017800", &ch), 0);
    CU_ASSERT(eq_hex(&ch, "01010200000100"));
    CU_ASSERT(state_is(doc, "020102000001010100040101740261620102010001"));
    /* an origin that names the item itself waits forever, harmlessly */
    ch.len = 0;
    CU_ASSERT_EQUAL(apply_hex(doc, "01010300840300016100", &ch), 0);
    CU_ASSERT_EQUAL(ch.len, 0);
    CU_ASSERT(rt_ydoc_has_pending(doc));
    rt_buf_dispose(&ch);
    rt_ydoc_destroy(doc);
}

/* Legacy JSON, Embed, Format and Any content: Yjs re-encodes what it decoded
 * (JSON.parse + JSON.stringify; float64 1.0 as an integer; Object.keys order;
 * the last duplicate wins).  Expected bytes from yjs 13.6.33. */
static void test_canonical_content(void)
{
    static const char *in =
        "01040900020101610330207b226222203a20312e35302c202231223a205b3265332c20225c75303065395c7564"
        "3833645c7564653030225d7d2009756e646566696e6564022d30850902107b227a223a312c2230223a74727565"
        "7d86090304626f6c640f207b20227822203a205b205d207d20880904027b400800000000000076030162780137"
        "7e01627900";
    static const char *out =
        "0104090002010161031d7b2231223a5b323030302c22c3a9f09f9880225d2c2262223a312e357d09756e646566"
        "696e65640130850902107b2230223a747275652c227a223a317d86090304626f6c64087b2278223a5b5d7d8809"
        "04027d03760201377e01627900";
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    CU_ASSERT_EQUAL(apply_hex(doc, in, NULL), 0);
    CU_ASSERT(state_is(doc, out));
    rt_buf_t u = hex(in), m = {0};
    rt_slice_t two[2] = {{u.data, u.len}, {u.data, u.len}};
    CU_ASSERT_EQUAL(rt_yupdate_merge(two, 2, &m), 0);
    CU_ASSERT(eq_hex(&m, out));
    rt_buf_t json = {0};
    rt_ykind_hint_t hint = {"a", RT_YKIND_ARRAY};
    rt_ydoc_to_json(doc, &hint, 1, &json);
    CU_ASSERT(eq_str(&json, "{\"a\":[{\"1\":[2000,\"\xc3\xa9\xf0\x9f\x98\x80\"],\"b\":1.5},null,0,"
                            "{\"0\":true,\"z\":1},3,{\"7\":null,\"b\":false}]}"));
    rt_buf_dispose(&u);
    rt_buf_dispose(&m);
    rt_buf_dispose(&json);
    rt_ydoc_destroy(doc);
}

/* Pending deletes and pending structs together, resolved by the missing
 * first update: one event with everything (Yjs 13.6.33 bytes). */
static void test_pending_both(void)
{
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    rt_buf_t ch = {0}, st = {0};
    CU_ASSERT_EQUAL(apply_hex(doc, WORKED[2], &ch), 0);
    CU_ASSERT(state_is(doc, "000101010001"));
    CU_ASSERT_EQUAL(apply_hex(doc, WORKED[1], &ch), 0);
    CU_ASSERT_EQUAL(ch.len, 0);
    CU_ASSERT(state_is(doc, "01010102c40100010101580101010001"));
    rt_buf_t sv = hex("010101");
    CU_ASSERT_EQUAL(rt_ydoc_encode_state_as_update(doc, (rt_slice_t){sv.data, sv.len}, &st), 0);
    CU_ASSERT(eq_hex(&st, "01010102c40100010101580101010001"));
    CU_ASSERT_EQUAL(apply_hex(doc, WORKED[0], &ch), 0);
    CU_ASSERT(eq_hex(&ch, WORKED_STATE));
    CU_ASSERT(state_is(doc, WORKED_STATE));
    CU_ASSERT(!rt_ydoc_has_pending(doc));
    /* a malformed state vector is refused */
    rt_buf_t bad = hex("05");
    CU_ASSERT_EQUAL(rt_ydoc_encode_state_as_update(doc, (rt_slice_t){bad.data, bad.len}, &st), RT_EINVAL);
    rt_buf_dispose(&bad);
    rt_buf_dispose(&sv);
    rt_buf_dispose(&ch);
    rt_buf_dispose(&st);
    rt_ydoc_destroy(doc);
}

/* XML fragment toString with a hook, attribute values of several kinds and text. */
static void test_xml_string(void)
{
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    CU_ASSERT_EQUAL(apply_hex(doc, "01080300070101780502686b280003000161017d01870300030344697628000302016e01"
                                   "7d0528000302016f01760101717d0128000302036172720175037d017e77017a870302"
                                   "0604000306017400",
                              NULL),
                    0);
    rt_ykind_hint_t hint = {"x", RT_YKIND_XML_FRAGMENT};
    rt_buf_t json = {0};
    rt_ydoc_to_json(doc, &hint, 1, &json);
    CU_ASSERT(eq_str(&json, "{\"x\":\"[object Object]<div arr=\\\"1,,z\\\" n=\\\"5\\\" "
                            "o=\\\"[object Object]\\\"></div>t\"}"));
    rt_buf_dispose(&json);
    rt_ydoc_destroy(doc);
}

void test_yjs_doc_register(void)
{
    static const CU_TestInfo tests[] = {
        {"worked_example", test_worked_example},
        {"kept_changes", test_kept_changes},
        {"kept_many_clients", test_kept_many_clients},
        {"out_of_order", test_out_of_order},
        {"pending_delete", test_pending_delete},
        {"conflicts", test_conflicts},
        {"map_array_gc", test_map_array_gc},
        {"rejected_update_leaves_doc", test_rejected_update_leaves_doc},
        {"update_algebra", test_update_algebra},
        {"emoji_split", test_emoji_split},
        {"v2", test_v2},
        {"gc_off", test_gc_off},
        {"hostile_references", test_hostile_references},
        {"canonical_content", test_canonical_content},
        {"pending_both", test_pending_both},
        {"xml_string", test_xml_string},
        CU_TEST_INFO_NULL,
    };
    unit_add_suite("yjs_doc", tests);
}
