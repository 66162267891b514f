/*
 * bench.c: `ydoc bench FILE`, the C side of tests/bench/yjs/bench.mjs.  Applies
 * a length-prefixed update stream one update at a time to a fresh document (as
 * a server does), encodes the state, loads that state into another fresh
 * document, and prints one JSON line of timings and memory.
 */
#include "ydoc.h"

#include <stdlib.h>
#include <string.h>

/* Peak resident set size (VmHWM) of this process in KiB, or 0 if unknown. */
static long peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

static double ms_since(uint64_t t0)
{
    return (double)(rt_now_mono_ns() - t0) / 1e6;
}

/* Applies all updates; `changes` collects the events when not NULL. */
static int bench_apply(const ydoc_input_t *in, rt_ydoc_t **out, rt_buf_t *changes, double *ms)
{
    rt_ydoc_t *doc;
    rt_ydoc_create(&doc);
    uint64_t t0 = rt_now_mono_ns();
    for (size_t i = 0; i < in->n; i++) {
        if (changes)
            changes->len = 0;
        int rc = rt_ydoc_apply_update(doc, in->updates[i], changes);
        if (rc != 0) {
            fprintf(stderr, "ydoc: bench: update %zu: %s\n", i, rt_strerror(rc));
            rt_ydoc_destroy(doc);
            return 1;
        }
    }
    *ms = ms_since(t0);
    *out = doc;
    return 0;
}

int ydoc_cmd_bench(int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "ydoc: bench needs exactly one length-prefixed update stream\n");
        return 2;
    }
    ydoc_opts_t opts = {0};
    ydoc_input_t in;
    rt_ydoc_t *doc = NULL, *with_events = NULL, *loaded = NULL;
    rt_buf_t state = {0}, changes = {0};
    double apply_ms = 0, apply_ev_ms = 0, encode_ms = 0, load_ms = 0;
    int rc = ydoc_input_load(&in, argv, 1, &opts) != 0;
    long rss_input = peak_rss_kib();
    if (rc == 0)
        rc = bench_apply(&in, &doc, NULL, &apply_ms);
    long rss_doc = peak_rss_kib();
    size_t doc_bytes = doc ? rt_ydoc_memory_usage(doc) : 0;
    if (rc == 0) {
        uint64_t t0 = rt_now_mono_ns();
        rc = rt_ydoc_encode_state_as_update(doc, (rt_slice_t){0}, &state) != 0;
        encode_ms = ms_since(t0);
    }
    if (rc == 0) {
        rt_ydoc_create(&loaded);
        uint64_t t0 = rt_now_mono_ns();
        rc = rt_ydoc_apply_update(loaded, (rt_slice_t){state.data, state.len}, NULL) != 0;
        load_ms = ms_since(t0);
    }
    size_t loaded_bytes = loaded ? rt_ydoc_memory_usage(loaded) : 0;
    rt_ydoc_destroy(doc); /* the run with events is measured without the first document */
    if (rc == 0)
        rc = bench_apply(&in, &with_events, &changes, &apply_ev_ms);
    if (rc == 0)
        printf("{\"updates\":%zu,\"apply_ms\":%.3f,\"apply_with_events_ms\":%.3f,\"encode_ms\":%.3f,"
               "\"state_bytes\":%zu,\"load_ms\":%.3f,\"doc_bytes\":%zu,\"loaded_doc_bytes\":%zu,"
               "\"peak_rss_input_kib\":%ld,\"peak_rss_after_apply_kib\":%ld,\"peak_rss_kib\":%ld}\n",
               in.n, apply_ms, apply_ev_ms, encode_ms, state.len, load_ms, doc_bytes, loaded_bytes, rss_input,
               rss_doc, peak_rss_kib());
    rt_ydoc_destroy(with_events);
    rt_ydoc_destroy(loaded);
    rt_buf_dispose(&state);
    rt_buf_dispose(&changes);
    ydoc_input_dispose(&in);
    return rc;
}
