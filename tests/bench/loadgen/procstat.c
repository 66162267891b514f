/*
 * procstat.c: samples the servers under test from /proc, so that their CPU
 * time, syscall counts and memory are measured over exactly the generator's
 * measurement window.
 */
#include "lg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

double lg_clk_tck(void)
{
    long t = sysconf(_SC_CLK_TCK);
    return t > 0 ? (double)t : 100.0;
}

int lg_procs_parse(const char *spec, bool aux, lg_proc_t **out, int n)
{
    lg_proc_t *procs = *out;
    const char *p = spec;
    while (*p) {
        const char *colon = strchr(p, ':');
        if (colon == NULL || colon == p || (size_t)(colon - p) >= sizeof procs[0].name)
            goto fail;
        char *end;
        long pid = strtol(colon + 1, &end, 10);
        if (pid <= 0 || (*end != ',' && *end != '\0'))
            goto fail;
        procs = rt_xrealloc(procs, sizeof *procs * (size_t)(n + 1));
        memset(&procs[n], 0, sizeof procs[n]);
        memcpy(procs[n].name, p, (size_t)(colon - p));
        procs[n].pid = (pid_t)pid;
        procs[n].aux = aux;
        n++;
        p = *end ? end + 1 : end;
    }
    *out = procs;
    return n;
fail:
    *out = procs;
    return RT_EINVAL;
}

/* Reads a small /proc file into buf; returns its length or -1. */
static ssize_t read_small(pid_t pid, const char *what, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (ssize_t)n;
}

static uint64_t field_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

int lg_proc_sample(pid_t pid, lg_proc_sample_t *out)
{
    char buf[4096];
    lg_proc_sample_t s = {0};
    if (read_small(pid, "stat", buf, sizeof buf) < 0)
        return RT_EIO;
    /* the command name may hold spaces and parentheses: fields start after the last ')' */
    const char *p = strrchr(buf, ')');
    if (p == NULL)
        return RT_EIO;
    unsigned long long utime = 0, stime = 0;
    /* after ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return RT_EIO;
    s.cpu_ticks = utime + stime;
    if (read_small(pid, "io", buf, sizeof buf) >= 0) {
        s.syscr = field_after(buf, "syscr:");
        s.syscw = field_after(buf, "syscw:");
    }
    if (read_small(pid, "status", buf, sizeof buf) < 0)
        return RT_EIO;
    s.rss_kb = field_after(buf, "VmRSS:");
    s.hwm_kb = field_after(buf, "VmHWM:");
    *out = s;
    return 0;
}

int lg_core_busy(int core, uint64_t *ticks)
{
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return RT_EIO;
    char line[512], want[16];
    int wl = snprintf(want, sizeof want, "cpu%d ", core);
    int rc = RT_EIO;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, want, (size_t)wl) != 0)
            continue;
        unsigned long long v[8] = {0};
        if (sscanf(line + wl, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]) == 8) {
            /* user nice system idle iowait irq softirq steal */
            *ticks = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
            rc = 0;
        }
        break;
    }
    fclose(f);
    return rc;
}
