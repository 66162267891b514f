/* static.h: the demo app's static files (static.c). */
#ifndef EDGE_STATIC_H
#define EDGE_STATIC_H

#include <h2o.h>

/* Serves files below `dir` (borrowed; resolved once; NULL, empty or not a
 * directory: serves none). Main thread, before the event loops start. */
int edge_static_init(const char *dir);
/* GET / (index.html) and /assets/FILE: answers and returns 1, else 0
 * (not a static route, or none configured). Any loop thread. */
int edge_static_route(h2o_req_t *req);

#endif
