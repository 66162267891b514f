/*
 * token.c: `rtctl token`: mints an HS256 JWT (sub, iat, exp, channels,
 * admin) with libjwt, for development stacks and tests.
 */
#include "rtctl.h"

#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "Usage: rtctl token --secret S --sub USER [--channels 'a-*,b'] [--admin] [--ttl 1h]\n\n"
    "Mints an HS256 token for development and tests and prints it.\n"
    "  --secret S       the edges' RT_JWT_SECRET (default: $RT_JWT_SECRET)\n"
    "  --sub USER       the user id (claim sub)\n"
    "  --channels LIST  comma-separated channel patterns, * matches any run of characters (claim channels)\n"
    "  --admin          every channel and document (claim admin: true)\n"
    "  --ttl DUR        lifetime (default 1h; 30s, 15m, 24h); exp = now + ttl\n\n"
    "Example:\n  export RT_TOKEN=$(rtctl token --secret dev --sub alice --channels 'room-*')\n";

enum { OPT_SECRET = CTL_OPT_FIRST, OPT_SUB, OPT_CHANNELS, OPT_ADMIN, OPT_TTL };

/* Splits "a-*,b" into a JSON array, skipping empty items. */
static json_t *channel_list(const char *list)
{
    json_t *arr = json_array();
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        char *item = rt_xstrndup(p, n);
        if (n > 0)
            json_array_append_new(arr, json_string(item));
        free(item);
        p += n + (p[n] == ',');
    }
    return arr;
}

/* Signs the claims; returns the token (owned, free()) or NULL. */
static char *sign(const char *secret, json_t *claims)
{
    jwt_t *jwt = NULL;
    char *token = NULL, *claims_text = json_dumps(claims, JSON_COMPACT);
    if (jwt_new(&jwt) == 0 && jwt_add_grants_json(jwt, claims_text) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) == 0)
        token = jwt_encode_str(jwt);
    jwt_free(jwt);
    free(claims_text);
    return token;
}

int ctl_cmd_token(int argc, char **argv)
{
    static const struct option options[] = {{"secret", required_argument, NULL, OPT_SECRET},
                                            {"sub", required_argument, NULL, OPT_SUB},
                                            {"channels", required_argument, NULL, OPT_CHANNELS},
                                            {"admin", no_argument, NULL, OPT_ADMIN},
                                            {"ttl", required_argument, NULL, OPT_TTL},
                                            {"help", no_argument, NULL, 'h'},
                                            {0}};
    const char *secret = getenv("RT_JWT_SECRET"), *sub = NULL, *channels = NULL;
    bool admin = false;
    int64_t ttl_ms = 3600 * 1000;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_SECRET:
            secret = optarg;
            break;
        case OPT_SUB:
            sub = optarg;
            break;
        case OPT_CHANNELS:
            channels = optarg;
            break;
        case OPT_ADMIN:
            admin = true;
            break;
        case OPT_TTL:
            if (ctl_parse_millis(optarg, &ttl_ms) != 0 || ttl_ms < 1000)
                return ctl_usage_error("token", "bad --ttl '%s' (at least 1s; e.g. 30s, 15m, 1h)", optarg);
            break;
        case 'h':
            fputs(usage, stdout);
            return CTL_EXIT_OK;
        default:
            return ctl_usage_error("token", "bad option");
        }
    }
    if (optind != argc)
        return ctl_usage_error("token", "unexpected argument '%s'", argv[optind]);
    if (secret == NULL || *secret == '\0')
        return ctl_usage_error("token", "--secret (or $RT_JWT_SECRET) is required");
    if (sub == NULL || *sub == '\0')
        return ctl_usage_error("token", "--sub is required");
    int64_t now = (int64_t)time(NULL);
    json_t *claims = json_pack("{s:s, s:I, s:I}", "sub", sub, "iat", (json_int_t)now, "exp",
                               (json_int_t)(now + (ttl_ms + 999) / 1000));
    if (channels != NULL)
        json_object_set_new(claims, "channels", channel_list(channels));
    if (admin)
        json_object_set_new(claims, "admin", json_true());
    char *token = sign(secret, claims);
    json_decref(claims);
    if (token == NULL) {
        fprintf(stderr, "rtctl token: signing failed\n");
        return CTL_EXIT_FAIL;
    }
    printf("%s\n", token);
    free(token);
    return CTL_EXIT_OK;
}
