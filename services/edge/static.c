/* static.c: the demo app's files (RT_STATIC_DIR) for GET / and /assets/...:
 * regular files below the directory only, no listing, no traversal. */
#include "static.h"
#include "edge.h"
#include "rt/log.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char static_root[PATH_MAX]; /* empty: serving nothing; set once before the threads start */

int edge_static_init(const char *dir)
{
    static_root[0] = '\0';
    if (dir == NULL || *dir == '\0')
        return RT_OK;
    struct stat st;
    if (realpath(dir, static_root) == NULL || stat(static_root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        static_root[0] = '\0';
        RT_LOG_INFO("static_none", "dir=%s is not a directory; serving no static files", dir);
        return RT_OK;
    }
    RT_LOG_INFO("static_files", "dir=%s serves / and /assets/", static_root);
    return RT_OK;
}

static const char *mime_of(const char *path)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".map", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".wasm", "application/wasm"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot != NULL && i < RT_ARRAY_SIZE(types); i++)
        if (strcmp(dot, types[i][0]) == 0)
            return types[i][1];
    return "application/octet-stream";
}

/* A safe relative path: [A-Za-z0-9._-] segments, none starting with a dot. */
static int rel_is_safe(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        int seg_start = i == 0 || p[i - 1] == '/';
        if (seg_start && (c == '.' || c == '/'))
            return 0;
        if (!(c == '/' || c == '.' || c == '_' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z')))
            return 0;
    }
    return len > 0 && p[len - 1] != '/';
}

int edge_static_route(h2o_req_t *req)
{
    if (static_root[0] == '\0')
        return 0;
    const char *p = req->path_normalized.base;
    size_t len = req->path_normalized.len;
    int is_index = len == 1 && p[0] == '/';
    if (!is_index && !(len > 8 && memcmp(p, "/assets/", 8) == 0))
        return 0;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        edge_http_error(req, 405, "bad_request", "use GET");
        return 1;
    }
    const char *rel = is_index ? "index.html" : p + 1;
    size_t rel_len = is_index ? strlen(rel) : len - 1;
    char full[PATH_MAX + 256];
    struct stat st;
    if (!rel_is_safe(rel, rel_len) || rel_len > 255 ||
        snprintf(full, sizeof(full), "%s/%.*s", static_root, (int)rel_len, rel) >= (int)sizeof(full) ||
        stat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
        edge_http_error(req, 404, "not_found", "no such file");
        return 1;
    }
    const char *mime = mime_of(full);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    if (h2o_file_send(req, 200, "OK", full, h2o_iovec_init(mime, strlen(mime)), 0) != 0)
        edge_http_error(req, 404, "not_found", "no such file");
    return 1;
}
