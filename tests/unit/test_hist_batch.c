/* test_hist_batch.c: chat-history's group-commit batch: channel grouping, duplicate
 * keys inside a batch and against the store, dense offset assignment. */
#include "../../services/chat-history/hist.h"
#include "rt/pg.h"
#include "unit.h"

#include <string.h>

static void add(hist_batch_t *b, const char *channel, const char *user, const char *id)
{
    hist_publish_t p = {.channel = channel,
                        .event = "message",
                        .user = user,
                        .id = id,
                        .conn = "",
                        .origin = "",
                        .data = RT_SLICE_LIT("{}")};
    hist_batch_add(b, &p, &(hist_reply_to_t){.reply = "_INBOX.x"}, 1000);
}

static void test_groups_and_offsets(void)
{
    hist_batch_t b;
    hist_batch_init(&b);
    add(&b, "zeta", "u", "");
    add(&b, "alpha", "u", "");
    add(&b, "zeta", "u", "");
    add(&b, "Beta", "u", "");
    hist_batch_prepare(&b);
    CU_ASSERT_EQUAL(b.nchans, 3);
    /* bytewise order, as COLLATE "C" */
    CU_ASSERT_STRING_EQUAL(hist_batch_str(&b, b.chans[0].name), "Beta");
    CU_ASSERT_STRING_EQUAL(hist_batch_str(&b, b.chans[1].name), "alpha");
    CU_ASSERT_STRING_EQUAL(hist_batch_str(&b, b.chans[2].name), "zeta");
    CU_ASSERT_EQUAL(hist_batch_find_chan(&b, "zeta", 4), 2);
    CU_ASSERT_EQUAL(hist_batch_find_chan(&b, "zet", 3), -1);
    CU_ASSERT_EQUAL(b.chans[2].claimed, 2);
    b.chans[0].last = 1; /* as the store returns them: 1 claimed by a new channel */
    b.chans[1].last = 1;
    b.chans[2].last = 12; /* 2 claimed after offset 10 */
    hist_batch_assign(&b);
    CU_ASSERT_EQUAL(b.items[0].offset, 11);
    CU_ASSERT_EQUAL(b.items[2].offset, 12);
    CU_ASSERT_EQUAL(b.items[1].offset, 1);
    CU_ASSERT_EQUAL(b.items[3].offset, 1);
    CU_ASSERT_EQUAL(b.chans[2].last, 12);
    CU_ASSERT_EQUAL(b.chans[2].count, 2);
    CU_ASSERT_EQUAL(hist_batch_new_count(&b), 4);
    CU_ASSERT_EQUAL(b.items[0].ts_ms, 1000);
    CU_ASSERT_STRING_EQUAL(hist_batch_str(&b, b.items[0].reply), "_INBOX.x");
    hist_batch_dispose(&b);
}

static void test_repeats_in_batch(void)
{
    hist_batch_t b;
    hist_batch_init(&b);
    add(&b, "c", "alice", "k1");
    add(&b, "c", "alice", "k1"); /* same key: duplicate of the first */
    add(&b, "c", "bob", "k1");   /* another user: a different key */
    add(&b, "d", "alice", "k1"); /* another channel: a different key */
    add(&b, "c", "alice", "");   /* no id: never a duplicate */
    add(&b, "c", "alice", "");
    hist_batch_prepare(&b);
    CU_ASSERT_EQUAL(b.nchans, 2);
    CU_ASSERT_EQUAL(b.chans[0].claimed, 4); /* c: alice/k1, bob/k1 and the two without id */
    CU_ASSERT_EQUAL(b.chans[1].claimed, 1);
    b.chans[0].last = 4;
    b.chans[1].last = 1;
    hist_batch_assign(&b);
    CU_ASSERT_EQUAL(b.items[0].offset, 1);
    CU_ASSERT_FALSE(b.items[0].duplicate);
    CU_ASSERT_EQUAL(b.items[1].offset, 1);
    CU_ASSERT_TRUE(b.items[1].duplicate);
    CU_ASSERT_EQUAL(b.items[2].offset, 2);
    CU_ASSERT_EQUAL(b.items[3].offset, 1);
    CU_ASSERT_EQUAL(b.items[4].offset, 3);
    CU_ASSERT_EQUAL(b.items[5].offset, 4);
    CU_ASSERT_EQUAL(hist_batch_new_count(&b), 5);
    hist_batch_dispose(&b);
}

static void test_existing_keys(void)
{
    hist_batch_t b;
    hist_batch_init(&b);
    add(&b, "c", "alice", "old");
    add(&b, "c", "alice", "new");
    add(&b, "c", "alice", "old");
    hist_batch_prepare(&b);
    CU_ASSERT_EQUAL(b.chans[0].claimed, 2);
    b.chans[0].last = 9; /* claimed 8 and 9 */
    CU_ASSERT_EQUAL(hist_batch_mark_existing(&b, "c", "alice", "old", 5), 1);
    CU_ASSERT_EQUAL(hist_batch_mark_existing(&b, "c", "alice", "other", 6), 0);
    hist_batch_assign(&b);
    CU_ASSERT_EQUAL(b.items[0].offset, 5);
    CU_ASSERT_TRUE(b.items[0].duplicate);
    CU_ASSERT_EQUAL(b.items[1].offset, 8); /* dense: no offset spent on duplicates */
    CU_ASSERT_EQUAL(b.items[2].offset, 5);
    CU_ASSERT_TRUE(b.items[2].duplicate);
    CU_ASSERT_EQUAL(b.chans[0].last, 8); /* offset 9 is given back */
    CU_ASSERT_EQUAL(b.chans[0].count, 1);
    CU_ASSERT_EQUAL(hist_batch_new_count(&b), 1);
    /* a retry prepares the same batch again from scratch */
    hist_batch_prepare(&b);
    b.chans[0].last = 9;
    hist_batch_assign(&b);
    CU_ASSERT_EQUAL(b.items[0].offset, 8);
    CU_ASSERT_FALSE(b.items[0].duplicate);
    CU_ASSERT_EQUAL(b.items[1].offset, 9);
    hist_batch_clear(&b);
    CU_ASSERT_EQUAL(b.n, 0);
    hist_batch_dispose(&b);
}

/* PostgreSQL's binary array: ndim 1, no nulls, element oid, count, lower bound 1,
 * then each element's length and bytes. */
static void expect_array(const rt_buf_t *buf, const char *want, size_t len)
{
    CU_ASSERT_EQUAL(buf->len, len);
    CU_ASSERT(buf->len == len && memcmp(buf->data, want, len) == 0);
}

static void test_pg_binary_arrays(void)
{
    rt_buf_t text = {0}, ints = {0}, bytes = {0};
    rt_pg_array_add_text(&text, "a\"b", 3);
    rt_pg_array_add_text(&text, "", 0);
    rt_pg_array_add_int(&ints, -3);
    rt_pg_array_add_bytea(&bytes, (const uint8_t *)"\x00\xff", 2);
    static const char want_text[] = "\0\0\0\1\0\0\0\0\0\0\0\x19\0\0\0\2\0\0\0\1"
                                    "\0\0\0\3a\"b\0\0\0\0";
    static const char want_ints[] = "\0\0\0\1\0\0\0\0\0\0\0\x14\0\0\0\1\0\0\0\1"
                                    "\0\0\0\x08\xff\xff\xff\xff\xff\xff\xff\xfd";
    static const char want_bytes[] = "\0\0\0\1\0\0\0\0\0\0\0\x11\0\0\0\1\0\0\0\1"
                                     "\0\0\0\2\0\xff";
    expect_array(&text, want_text, sizeof(want_text) - 1);
    expect_array(&ints, want_ints, sizeof(want_ints) - 1);
    expect_array(&bytes, want_bytes, sizeof(want_bytes) - 1);
    rt_buf_dispose(&text);
    rt_buf_dispose(&ints);
    rt_buf_dispose(&bytes);
}

void test_hist_batch_register(void)
{
    static const CU_TestInfo tests[] = {
        {"groups_and_offsets", test_groups_and_offsets},
        {"repeats_in_batch", test_repeats_in_batch},
        {"existing_keys", test_existing_keys},
        {"pg_binary_arrays", test_pg_binary_arrays},
        CU_TEST_INFO_NULL,
    };
    unit_add_suite("hist_batch", tests);
}
