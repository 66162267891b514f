/*
 * rt/auth.h: HS256 JSON Web Tokens (verification with OpenSSL's HMAC) and the
 * channel patterns of their claims.  Pure functions, safe from any thread.
 *
 * Accepted: header {"alg": "HS256"} (typ optional), a valid signature, claims
 * with a non-empty string `sub` and a numeric `exp` in the future; optional
 * `channels` (array of patterns where '*' matches any run of characters) and
 * `admin` (true: every channel).  Everything else is refused.
 */
#ifndef RT_AUTH_H
#define RT_AUTH_H

#include "rt/common.h"

#include <stdint.h>

#define RT_AUTH_MAX_TOKEN 8192

typedef struct rt_auth_claims {
    char *sub;   /* owned */
    int64_t exp; /* seconds since the epoch */
    int admin;
    char **channels; /* owned, nchannels patterns */
    size_t nchannels;
} rt_auth_claims_t;

/* Verifies `token` with `secret` at time `now` (seconds).  0 and *out filled
 * (release with rt_auth_claims_dispose), or RT_EINVAL with a short static
 * reason in *why ("expired", "bad signature", ...).  Borrows its arguments. */
int rt_auth_verify(const char *secret, size_t secret_len, const char *token, size_t token_len, int64_t now,
                   rt_auth_claims_t *out, const char **why);
void rt_auth_claims_dispose(rt_auth_claims_t *claims);

/* 1 if the claims allow the channel or document `name`. */
int rt_auth_allows(const rt_auth_claims_t *claims, const char *name);

/* 1 if `pattern` ('*' matches any run, possibly empty) matches all of `name`. */
int rt_auth_pattern_match(const char *pattern, const char *name);

/* Mints an HS256 token (for tools and tests): appends it to *out. */
void rt_auth_sign(const char *secret, size_t secret_len, const char *claims_json, rt_buf_t *out);

#endif
