/*
 * ydoc.h: internals shared by the files of the ydoc tool (inputs, hex, the
 * subcommands that live in their own files).  Single-threaded.
 */
#ifndef YDOC_H
#define YDOC_H

#include "rt/common.h"
#include "rt/yjs.h"

#include <stdbool.h>
#include <stdio.h>

/* Updates read from the inputs, in order; they borrow from `files`. */
typedef struct ydoc_input {
    rt_slice_t *updates;
    size_t n;
    rt_buf_t *files; /* owned file contents */
    size_t n_files;
} ydoc_input_t;

/* How the inputs are framed and encoded. */
typedef struct ydoc_opts {
    bool raw;      /* each file is one update, not a length-prefixed stream */
    bool v2;       /* updates are V2 */
    bool hex;      /* binary outputs as hex text */
    rt_ykind_hint_t *hints;
    size_t n_hints;
} ydoc_opts_t;

/* Reads `path` ("-" = stdin) whole into `out`.  0 or RT_EIO (reported on stderr). */
int ydoc_read_file(const char *path, rt_buf_t *out);

/* Reads the files (stdin if n == 0) and splits them into updates.  0, or
 * RT_EINVAL/RT_EIO after reporting on stderr. */
int ydoc_input_load(ydoc_input_t *in, char **paths, size_t n, const ydoc_opts_t *opts);
void ydoc_input_dispose(ydoc_input_t *in);

/* Appends the lowercase hex of `s`, then a NUL (not counted in len). */
void ydoc_hex_append(rt_buf_t *out, rt_slice_t s);
/* Decodes hex text into `out`; RT_EINVAL on odd length or a non-hex digit. */
int ydoc_hex_decode(const char *hex, size_t len, rt_buf_t *out);

/* Applies one update (V1, or V2 if `v2`), appending the change to `changed` if not NULL. */
int ydoc_apply(rt_ydoc_t *doc, rt_slice_t u, bool v2, rt_buf_t *changed);

/* Appends the JSON content: the hinted roots in order (an absent root is its kind's
 * empty value), or every root with its inferred kind if there are no hints. */
int ydoc_json(const rt_ydoc_t *doc, const rt_ykind_hint_t *hints, size_t n_hints, rt_buf_t *out);

/* Parses a kind name: text, map, array, xml, auto.  RT_EINVAL otherwise. */
int ydoc_kind_parse(const char *s, rt_ykind_t *out);

/* `ydoc session FILE...`: the differential-test harness (session.c). */
int ydoc_cmd_session(int argc, char **argv);
/* `ydoc bench FILE`: timings and memory for the benchmark (bench.c). */
int ydoc_cmd_bench(int argc, char **argv);

#endif
