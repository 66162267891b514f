/* test_auth.c: HS256 verification, every refusal, and channel patterns. */
#include "rt/auth.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#define SECRET "s3cret"
#define NOW 1800000000

static char *sign(const char *secret, const char *claims)
{
    rt_buf_t b = {0};
    rt_auth_sign(secret, strlen(secret), claims, &b);
    rt_buf_append_byte(&b, 0);
    size_t len;
    return (char *)rt_buf_take(&b, &len);
}

static int verify(const char *token, rt_auth_claims_t *c, const char **why)
{
    return rt_auth_verify(SECRET, strlen(SECRET), token, strlen(token), NOW, c, why);
}

static void expect_refused(const char *token, const char *reason)
{
    rt_auth_claims_t c = {0};
    const char *why = NULL;
    CU_ASSERT_EQUAL(verify(token, &c, &why), RT_EINVAL);
    CU_ASSERT_PTR_NULL(c.sub);
    if (reason != NULL) {
        CU_ASSERT_STRING_EQUAL(why, reason);
    }
}

static void test_valid_token(void)
{
    char *t = sign(SECRET, "{\"sub\":\"alice\",\"exp\":1900000000,\"channels\":[\"team-*\",\"doc:42\"]}");
    rt_auth_claims_t c;
    const char *why;
    CU_ASSERT_EQUAL_FATAL(verify(t, &c, &why), RT_OK);
    CU_ASSERT_STRING_EQUAL(c.sub, "alice");
    CU_ASSERT_EQUAL(c.exp, 1900000000);
    CU_ASSERT(!c.admin);
    CU_ASSERT(rt_auth_allows(&c, "team-red"));
    CU_ASSERT(rt_auth_allows(&c, "doc:42"));
    CU_ASSERT(!rt_auth_allows(&c, "doc:43"));
    CU_ASSERT(!rt_auth_allows(&c, "xteam-red"));
    rt_auth_claims_dispose(&c);
    rt_auth_claims_dispose(NULL);
    free(t);
    t = sign(SECRET, "{\"sub\":\"root\",\"exp\":1900000000,\"admin\":true}");
    CU_ASSERT_EQUAL_FATAL(verify(t, &c, &why), RT_OK);
    CU_ASSERT(rt_auth_allows(&c, "anything"));
    rt_auth_claims_dispose(&c);
    free(t);
}

static void test_refusals(void)
{
    char *t;
    t = sign("wrong", "{\"sub\":\"a\",\"exp\":1900000000}");
    expect_refused(t, "bad signature");
    free(t);
    t = sign(SECRET, "{\"sub\":\"a\",\"exp\":1700000000}");
    expect_refused(t, "expired");
    free(t);
    t = sign(SECRET, "{\"sub\":\"a\"}");
    expect_refused(t, "missing or bad exp");
    free(t);
    t = sign(SECRET, "{\"exp\":1900000000}");
    expect_refused(t, "missing or bad sub");
    free(t);
    t = sign(SECRET, "{\"sub\":\"\",\"exp\":1900000000}");
    expect_refused(t, "missing or bad sub");
    free(t);
    t = sign(SECRET, "{\"sub\":\"a\",\"exp\":\"1900000000\"}");
    expect_refused(t, "missing or bad exp");
    free(t);
    t = sign(SECRET, "{\"sub\":\"a\",\"exp\":1900000000,\"channels\":\"x\"}");
    expect_refused(t, "bad channels claim");
    free(t);
    /* alg none: {"alg":"none"} . {"sub":"a","exp":1900000000} . (empty) */
    expect_refused("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIiwiZXhwIjoxOTAwMDAwMDAwfQ.", "only HS256 tokens are accepted");
    /* alg HS512 and RS256 headers */
    expect_refused("eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhIiwiZXhwIjoxOTAwMDAwMDAwfQ.abc", "only HS256 tokens are accepted");
    expect_refused("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIiwiZXhwIjoxOTAwMDAwMDAwfQ.abc", "only HS256 tokens are accepted");
    expect_refused("", "malformed token");
    expect_refused("a.b", "malformed token");
    expect_refused("a.b.c.d", "malformed token");
    expect_refused("!!!.###.$$$", NULL);
    /* a valid token with one byte of its signature changed */
    t = sign(SECRET, "{\"sub\":\"a\",\"exp\":1900000000}");
    size_t n = strlen(t);
    t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A';
    expect_refused(t, "bad signature");
    free(t);
}

static void test_patterns(void)
{
    CU_ASSERT(rt_auth_pattern_match("*", ""));
    CU_ASSERT(rt_auth_pattern_match("*", "abc"));
    CU_ASSERT(rt_auth_pattern_match("a*c", "abbbc"));
    CU_ASSERT(rt_auth_pattern_match("a*b*c", "aXbYbZc"));
    CU_ASSERT(!rt_auth_pattern_match("a*b*c", "aXbYbZ"));
    CU_ASSERT(rt_auth_pattern_match("doc:42", "doc:42"));
    CU_ASSERT(!rt_auth_pattern_match("doc:42", "doc:420"));
    CU_ASSERT(rt_auth_pattern_match("**x", "x"));
    CU_ASSERT(!rt_auth_pattern_match("", "x"));
}

void test_auth_register(void)
{
    static const CU_TestInfo tests[] = {
        {"valid_token", test_valid_token},
        {"refusals", test_refusals},
        {"patterns", test_patterns},
        CU_TEST_INFO_NULL,
    };
    unit_add_suite("auth", tests);
}
