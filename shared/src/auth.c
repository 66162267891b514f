/* auth.c: HS256 tokens with OpenSSL HMAC and jansson; channel patterns. */
#include "rt/auth.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Decodes unpadded base64url; RT_EINVAL on any other character or a bad length. */
static int b64url_decode(const char *s, size_t len, rt_buf_t *out)
{
    if (len % 4 == 1)
        return RT_EINVAL;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(s[i]);
        if (v < 0)
            return RT_EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            rt_buf_append_byte(out, (uint8_t)(acc >> bits));
        }
    }
    /* the leftover bits of the last character must be zero (canonical encoding) */
    return (acc & ((1u << bits) - 1)) == 0 ? RT_OK : RT_EINVAL;
}

static void b64url_encode(const uint8_t *data, size_t len, rt_buf_t *out)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | data[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            rt_buf_append_byte(out, (uint8_t)alphabet[(acc >> bits) & 63]);
        }
    }
    if (bits > 0)
        rt_buf_append_byte(out, (uint8_t)alphabet[(acc << (6 - bits)) & 63]);
}

static json_t *decode_json_part(const char *s, size_t len)
{
    rt_buf_t raw = {0};
    json_t *j = NULL;
    if (b64url_decode(s, len, &raw) == RT_OK)
        j = json_loadb((const char *)raw.data, raw.len, JSON_REJECT_DUPLICATES, NULL);
    rt_buf_dispose(&raw);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static int check_header(const char *s, size_t len)
{
    json_t *h = decode_json_part(s, len);
    json_t *alg = json_object_get(h, "alg");
    int ok = json_is_string(alg) && strcmp(json_string_value(alg), "HS256") == 0;
    json_decref(h);
    return ok ? RT_OK : RT_EINVAL;
}

static int check_signature(const char *secret, size_t secret_len, const char *token, size_t signed_len, const char *sig,
                           size_t sig_len)
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), secret, (int)secret_len, (const uint8_t *)token, signed_len, mac, &mac_len);
    rt_buf_t given = {0};
    int ok = b64url_decode(sig, sig_len, &given) == RT_OK && given.len == mac_len &&
             CRYPTO_memcmp(given.data, mac, mac_len) == 0;
    rt_buf_dispose(&given);
    return ok ? RT_OK : RT_EINVAL;
}

static int read_claims(json_t *c, int64_t now, rt_auth_claims_t *out, const char **why)
{
    json_t *sub = json_object_get(c, "sub"), *exp = json_object_get(c, "exp");
    json_t *admin = json_object_get(c, "admin"), *channels = json_object_get(c, "channels");
    if (!json_is_string(sub) || json_string_length(sub) == 0 || json_string_length(sub) > 128 ||
        strlen(json_string_value(sub)) != json_string_length(sub))
        return *why = "missing or bad sub", RT_EINVAL;
    if (!json_is_number(exp))
        return *why = "missing or bad exp", RT_EINVAL;
    if (json_number_value(exp) <= (double)now)
        return *why = "expired", RT_EINVAL;
    if (admin != NULL && !json_is_boolean(admin))
        return *why = "bad admin claim", RT_EINVAL;
    if (channels != NULL && (!json_is_array(channels) || json_array_size(channels) > 1024))
        return *why = "bad channels claim", RT_EINVAL;
    for (size_t i = 0; channels != NULL && i < json_array_size(channels); i++)
        if (!json_is_string(json_array_get(channels, i)))
            return *why = "bad channels claim", RT_EINVAL;
    out->sub = rt_xstrdup(json_string_value(sub));
    out->exp = json_number_value(exp) > 9e15 ? INT64_MAX / 2 : (int64_t)json_number_value(exp);
    out->admin = json_is_true(admin);
    out->nchannels = channels ? json_array_size(channels) : 0;
    out->channels = rt_xcalloc(out->nchannels ? out->nchannels : 1, sizeof(char *));
    for (size_t i = 0; i < out->nchannels; i++)
        out->channels[i] = rt_xstrdup(json_string_value(json_array_get(channels, i)));
    return RT_OK;
}

int rt_auth_verify(const char *secret, size_t secret_len, const char *token, size_t token_len, int64_t now,
                   rt_auth_claims_t *out, const char **why)
{
    *why = "malformed token";
    if (token_len == 0 || token_len > RT_AUTH_MAX_TOKEN)
        return RT_EINVAL;
    const char *dot1 = memchr(token, '.', token_len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', token_len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', token_len - (size_t)(dot2 + 1 - token)) != NULL)
        return RT_EINVAL;
    if (check_header(token, (size_t)(dot1 - token)) != RT_OK) {
        *why = "only HS256 tokens are accepted";
        return RT_EINVAL;
    }
    if (check_signature(secret, secret_len, token, (size_t)(dot2 - token), dot2 + 1,
                        token_len - (size_t)(dot2 + 1 - token)) != RT_OK) {
        *why = "bad signature";
        return RT_EINVAL;
    }
    json_t *claims = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (claims == NULL)
        return RT_EINVAL;
    rt_auth_claims_t c = {0};
    int err = read_claims(claims, now, &c, why);
    json_decref(claims);
    if (err == RT_OK)
        *out = c;
    return err;
}

void rt_auth_claims_dispose(rt_auth_claims_t *claims)
{
    if (claims == NULL)
        return;
    for (size_t i = 0; i < claims->nchannels; i++)
        free(claims->channels[i]);
    free(claims->channels);
    free(claims->sub);
    *claims = (rt_auth_claims_t){0};
}

int rt_auth_pattern_match(const char *p, const char *s)
{
    /* iterative glob with one backtrack point: linear in practice, no recursion */
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == *s) {
            p++;
            s++;
        } else if (star != NULL) {
            p = star + 1;
            s = ++resume;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

int rt_auth_allows(const rt_auth_claims_t *claims, const char *name)
{
    if (claims->admin)
        return 1;
    for (size_t i = 0; i < claims->nchannels; i++)
        if (rt_auth_pattern_match(claims->channels[i], name))
            return 1;
    return 0;
}

void rt_auth_sign(const char *secret, size_t secret_len, const char *claims_json, rt_buf_t *out)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    size_t start = out->len;
    b64url_encode((const uint8_t *)header, sizeof(header) - 1, out);
    rt_buf_append_byte(out, '.');
    b64url_encode((const uint8_t *)claims_json, strlen(claims_json), out);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), secret, (int)secret_len, out->data + start, out->len - start, mac, &mac_len);
    rt_buf_append_byte(out, '.');
    b64url_encode(mac, mac_len, out);
}
