/*
 * main.c: rtctl, a terminal client of rtsync edges (like wscat, curl -N or
 * nats sub): dispatches to one subcommand and explains them all in --help.
 */
#include "rtctl.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"health", ctl_cmd_health, "readiness and a few metrics of each edge, one line per edge"},
    {"sub", ctl_cmd_sub, "subscribe to a channel (WebSocket, or SSE with --sse); one JSON line per frame"},
    {"pub", ctl_cmd_pub, "publish a message (or one per stdin line); prints the acknowledged offsets"},
    {"history", ctl_cmd_history, "a page of a channel's stored messages, one JSON line each"},
    {"token", ctl_cmd_token, "mint an HS256 token for development and tests"},
    {"doc", ctl_cmd_doc, "a Yjs document's state (binary V1 update, or JSON with --json)"},
};

static void usage(FILE *out)
{
    fputs("Usage: rtctl COMMAND [OPTIONS] ARGS...\n\n"
          "A terminal client of rtsync edges.\n\nCommands:\n",
          out);
    for (size_t i = 0; i < RT_ARRAY_SIZE(commands); i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fputs("\nEvery command but token takes --token JWT (or $RT_TOKEN), --user NAME (open stacks), --timeout DUR.\n"
          "Streams reconnect with full-jitter backoff (200 ms doubling to 5 s). Errors from the server\n"
          "are printed as it sent them (HTTP status, code, message) on stderr.\n"
          "Exit status: 0 success, 1 failure (refused, not ready, unreachable), 2 bad usage.\n\n"
          "Examples:\n"
          "  rtctl health http://127.0.0.1:8080 http://127.0.0.1:8081\n"
          "  rtctl sub http://127.0.0.1:8080 room-1 --since 0\n"
          "  rtctl pub http://127.0.0.1:8081 room-1 '{\"text\":\"hi\"}'\n"
          "  rtctl COMMAND --help\n",
          out);
}

static void on_signal(int sig)
{
    (void)sig;
    ctl_stop = 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CTL_EXIT_OK;
    }
    /* no SA_RESTART: a signal ends the poll or sleep a stream is waiting in */
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < RT_ARRAY_SIZE(commands); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "rtctl: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CTL_EXIT_USAGE;
}
