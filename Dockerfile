# syntax=docker/dockerfile:1
# rtsync: one image for every service (edge, presence, chat-history,
# crdt-merge). The command picks the service:
#   docker run rtsync edge | presence | chat-history | crdt-merge | chat-history migrate
# Build:  docker build -t rtsync:dev .
#
# Stage 1 builds the services with the project's Makefile on Debian 12; stage 2
# is debian:bookworm-slim with only the binaries, the schema migrations and the
# shared libraries the binaries load (found by scripts/runtime-packages.sh, so
# no build tool chain ships), running as an unprivileged user.

FROM debian:bookworm-slim AS build
# the build half of scripts/deps.sh's package list (no server, test or node packages)
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential pkg-config \
      libh2o-evloop-dev libwslay-dev libnats-dev liburing-dev \
      libprotobuf-c-dev protobuf-c-compiler \
      libpq-dev libjansson-dev libjwt-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY proto/ proto/
COPY shared/ shared/
COPY services/ services/
COPY scripts/runtime-packages.sh scripts/
# every directory in services/ is a service: build exactly those
RUN services=$(ls services) \
 && make -j"$(nproc)" MODE=release $(printf 'build/bin/%s ' $services) \
 && mkdir -p /out/bin \
 && for s in $services; do install -m 0755 "build/bin/$s" /out/bin/; done \
 && scripts/runtime-packages.sh /out/bin/* > /out/runtime-packages.txt \
 && cat /out/runtime-packages.txt

FROM debian:bookworm-slim
COPY --from=build /out/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      ca-certificates $(cat /tmp/runtime-packages.txt) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && groupadd --system --gid 10001 rtsync \
 && useradd --system --uid 10001 --gid rtsync --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin rtsync
COPY --from=build /out/bin/ /usr/local/bin/
COPY migrations/ /opt/rtsync/migrations/
# chat-history finds ./migrations from here (RT_MIGRATIONS_DIR unset)
WORKDIR /opt/rtsync
USER 10001:10001
EXPOSE 8080
# the services stop gracefully on SIGTERM (an edge drains within RT_DRAIN_TIMEOUT)
STOPSIGNAL SIGTERM
CMD ["edge"]
