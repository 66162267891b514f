/* test_crdt_doc.c: crdt-merge's awareness rules and connection ownership, and
 * its update path with a stand-in writer-less document (services/crdt-merge/doc.c). */
#include "../../services/crdt-merge/crdt.h"
#include "rt/yproto.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static rt_buf_t published;
static int publishes;

static void on_publish(void *ctx, const crdt_doc_t *doc, rt_slice_t update)
{
    (void)ctx, (void)doc;
    publishes++;
    published.len = 0;
    rt_buf_append(&published, update.data, update.len);
}

/* An awareness update with one entry. */
static rt_slice_t entry(rt_buf_t *b, uint64_t client, uint64_t clock, const char *state)
{
    b->len = 0;
    rt_yvar_write(b, 1);
    rt_yaw_encode_entry(b, client, clock, (rt_slice_t){(const uint8_t *)state, strlen(state)});
    return (rt_slice_t){b->data, b->len};
}

static const crdt_aw_state_t *state_of(crdt_doc_t *doc, uint64_t client)
{
    return rt_map_get(&doc->aw, (const char *)&client, sizeof(client));
}

static void test_awareness_rules_and_ownership(void)
{
    crdt_config_t cfg = {.awareness_ttl_ms = 30000, .idle_ms = 60000};
    crdt_docs_t docs;
    crdt_docs_init(&docs, &cfg, NULL, on_publish, NULL, NULL);
    crdt_doc_t *doc = rt_xcalloc(1, sizeof(*doc));
    strcpy(doc->name, "d");
    rt_buf_t b = {0};

    /* a first state at clock 0 is ignored, as every Yjs peer does */
    crdt_doc_awareness(doc, entry(&b, 11, 0, "{\"a\":1}"), "e1", 1, "c1", 1);
    CU_ASSERT_PTR_NULL(state_of(doc, 11));
    crdt_doc_awareness(doc, entry(&b, 11, 1, "{\"a\":1}"), "e1", 1, "c1", 1);
    CU_ASSERT_STRING_EQUAL(state_of(doc, 11)->owner_conn, "c1");
    /* a foreign echo (same clock) changes nothing, ownership included */
    crdt_doc_awareness(doc, entry(&b, 11, 1, "{\"a\":1}"), "e2", 1, "c2", 2);
    CU_ASSERT_STRING_EQUAL(state_of(doc, 11)->owner_conn, "c1");
    /* the connection closes: removal with the same clock */
    publishes = 0;
    crdt_docs_drop_owner(&docs, doc, "e1", 1, "c1");
    CU_ASSERT_EQUAL(publishes, 1);
    rt_yaw_reader_t r;
    rt_yaw_entry_t e;
    rt_yaw_begin(&r, (rt_slice_t){published.data, published.len});
    CU_ASSERT_EQUAL(rt_yaw_next(&r, &e), 1);
    CU_ASSERT_EQUAL(e.client, 11);
    CU_ASSERT_EQUAL(e.clock, 1);
    CU_ASSERT_TRUE(rt_yaw_state_is_null(e.state));
    CU_ASSERT_PTR_NULL(state_of(doc, 11)->state);
    /* y-websocket#122: the client reconnects with its id; its next state is
     * newer and the new connection owns it */
    crdt_doc_awareness(doc, entry(&b, 11, 2, "{\"a\":2}"), "e2", 1, "c3", 3);
    CU_ASSERT_STRING_EQUAL(state_of(doc, 11)->owner_conn, "c3");
    publishes = 0;
    crdt_docs_drop_owner(&docs, doc, "e1", 1, "c1"); /* the old connection owns nothing */
    CU_ASSERT_EQUAL(publishes, 0);
    /* an accepted null (same clock) detaches */
    crdt_doc_awareness(doc, entry(&b, 11, 2, "null"), "e2", 1, "c3", 4);
    CU_ASSERT_PTR_NULL(state_of(doc, 11)->state);
    CU_ASSERT_STRING_EQUAL(state_of(doc, 11)->owner_conn, "");
    rt_buf_t all = {0};
    CU_ASSERT_EQUAL(crdt_doc_awareness_encode(doc, &all), 0);

    rt_map_put(&docs.map, doc->name, 1, doc);
    rt_buf_dispose(&all);
    rt_buf_dispose(&b);
    rt_buf_dispose(&published);
    crdt_docs_dispose(&docs);
}

static void test_owner_weight_spreads(void)
{
    int first = 0;
    char doc[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(doc, sizeof(doc), "doc-%d", i);
        first += crdt_owner_weight("crdt-merge-1", doc) > crdt_owner_weight("crdt-merge-2", doc);
    }
    CU_ASSERT(first > 400 && first < 600);
    CU_ASSERT_EQUAL(crdt_owner_weight("a", "b"), crdt_owner_weight("a", "b"));
}

void test_crdt_doc_register(void)
{
    static const CU_TestInfo tests[] = {
        {"awareness_rules_and_ownership", test_awareness_rules_and_ownership},
        {"owner_weight_spreads", test_owner_weight_spreads},
        CU_TEST_INFO_NULL,
    };
    unit_add_suite("crdt_doc", tests);
}
