/* hist.c: the latency histogram of rt-loadgen (HDR-like log/linear buckets). */
#include "lg.h"

static unsigned bucket_of(uint64_t v)
{
    if (v < 128)
        return (unsigned)v;
    unsigned b = 63u - (unsigned)__builtin_clzll(v); /* 7..63 */
    unsigned mant = (unsigned)(v >> (b - 6));        /* 64..127 */
    return 128 + (b - 7) * 64 + (mant - 64);
}

static uint64_t bucket_upper(unsigned idx)
{
    if (idx < 128)
        return idx;
    unsigned k = idx - 128;
    unsigned b = k / 64 + 7;
    uint64_t mant = k % 64 + 64;
    return ((mant + 1) << (b - 6)) - 1;
}

void lg_hist_record(lg_hist_t *h, uint64_t value)
{
    h->counts[bucket_of(value)]++;
    h->n++;
    h->sum += value;
    if (value > h->max)
        h->max = value;
}

uint64_t lg_hist_quantile(const lg_hist_t *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->n);
    if (rank >= h->n)
        rank = h->n - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen > rank) {
            uint64_t up = bucket_upper(i);
            return up < h->max ? up : h->max;
        }
    }
    return h->max;
}
