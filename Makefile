# rtsync: one Makefile for the whole tree.
#
#   make            build every service, tool and the load generator (build/bin/)
#   make run        install what is missing, build, run the stack in the foreground
#   make up / down  the same stack detached / stopped
#   make test       unit tests (ASan+UBSan), fuzz smoke runs, integration tests
#   make bench      benchmarks against the peers
#   make fuzz       longer libFuzzer runs
#   make format     clang-format our sources
#
# MODE=release (default) | debug | asan.  Objects go to build/obj/$(MODE)/,
# binaries to build/bin/ (unit tests are always built in asan mode).

MODE ?= release
CC ?= cc
FUZZ_CC ?= clang
BUILD := build
GEN := $(BUILD)/gen
BIN := $(BUILD)/bin

SYS_CFLAGS := $(shell pkg-config --cflags libh2o-evloop libnats libprotobuf-c jansson libpq liburing 2>/dev/null | sed 's/-I/-isystem /g')
SYS_LIBS := $(shell pkg-config --libs libh2o-evloop libnats libprotobuf-c jansson libpq liburing 2>/dev/null) \
	-lwslay -ljwt -lssl -lcrypto -lpthread -lm

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -DH2O_USE_LIBUV=0 -MMD -MP -g \
	-Ishared/include -isystem $(GEN) $(SYS_CFLAGS)

MODE_CFLAGS_release := -O2
MODE_CFLAGS_debug := -O0
MODE_CFLAGS_asan := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
MODE_LDFLAGS_asan := -fsanitize=address,undefined

# ---- sources, found by convention -------------------------------------------
PROTOS := $(wildcard proto/rtsync/v1/*.proto)
PROTO_C := $(patsubst proto/%.proto,$(GEN)/%.pb-c.c,$(PROTOS))
PROTO_H := $(PROTO_C:.c=.h)
LIB_SRC := $(sort $(wildcard shared/src/*.c shared/src/*/*.c))
SERVICES := $(notdir $(wildcard services/*))
TOOLS := $(notdir $(wildcard tools/*))
UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
# unit tests also link every service's code but its main.c (services' names are prefixed, so they coexist)
UNIT_SVC_SRC := $(filter-out %/main.c,$(sort $(wildcard services/*/*.c)))
UNIT_SUITES := $(patsubst tests/unit/test_%.c,%,$(filter tests/unit/test_%.c,$(UNIT_SRC)))
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
LOADGEN_SRC := $(wildcard tests/bench/loadgen/*.c)
BARE_SRC := $(wildcard tests/bench/bare/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/$(1)/%.o,$(2))
LIB_OBJ = $(call obj,$(1),$(LIB_SRC)) $(call obj,$(1),$(PROTO_C))

.PHONY: all run up down test unit fuzz-smoke integration bench fuzz format clean deps

all: $(addprefix $(BIN)/,$(SERVICES) $(TOOLS)) $(if $(LOADGEN_SRC),$(BIN)/rt-loadgen) \
	$(if $(BARE_SRC),$(BIN)/rt-bare) $(BUILD)/demo/index.html

# the demo app (served by the edge at /): bundled by esbuild from demo/package-lock.json
DEMO_SRC := $(wildcard demo/src/* demo/index.html demo/build.mjs clients/js/*.js) demo/package-lock.json
$(BUILD)/demo/index.html: $(DEMO_SRC)
	@test -d demo/node_modules || (cd demo && npm ci --no-audit --no-fund --loglevel=error)
	node demo/build.mjs $(BUILD)/demo

# ---- compile rules ------------------------------------------------------------
$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) -Iproto $<

# generated protobuf code is compiled without our warnings (it is not ours)
define compile_mode
$(BUILD)/obj/$(1)/$(GEN)/%.o: $(GEN)/%.c $(PROTO_H)
	@mkdir -p $$(@D)
	$$(CC) $(filter-out -MMD -MP,$(BASE_CFLAGS)) -MMD -MP $$(MODE_CFLAGS_$(1)) -w -c $$< -o $$@
$(BUILD)/obj/$(1)/%.o: %.c $(PROTO_H) $(BUILD)/flags-$(1)
	@mkdir -p $$(@D)
	$$(CC) $(BASE_CFLAGS) $(WARN) $$(MODE_CFLAGS_$(1)) -c $$< -o $$@
$(BUILD)/lib/$(1)/librt.a: $$(call LIB_OBJ,$(1))
	@mkdir -p $$(@D)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach m,release debug asan,$(eval $(call compile_mode,$(m))))

# rebuild when the compiler flags change
$(BUILD)/flags-%: FORCE
	@mkdir -p $(BUILD)
	@echo '$(CC) $(BASE_CFLAGS) $(WARN) $(MODE_CFLAGS_$*)' | cmp -s - $@ || echo '$(CC) $(BASE_CFLAGS) $(WARN) $(MODE_CFLAGS_$*)' > $@
FORCE:
.PHONY: FORCE
.SECONDARY: $(BUILD)/bin-mode $(BUILD)/flags-release $(BUILD)/flags-debug $(BUILD)/flags-asan $(PROTO_C) $(PROTO_H)

# ---- binaries -----------------------------------------------------------------
# build/bin/ holds one mode at a time: switching MODE relinks
$(BUILD)/bin-mode: FORCE
	@mkdir -p $(BUILD)
	@echo '$(MODE)' | cmp -s - $@ || echo '$(MODE)' > $@
define program
$(BIN)/$(1): $$(call obj,$(MODE),$$(wildcard $(2)/$(1)/*.c)) $(BUILD)/lib/$(MODE)/librt.a $(BUILD)/bin-mode
	@mkdir -p $$(@D)
	$$(CC) $$(MODE_LDFLAGS_$(MODE)) -o $$@ $$(filter-out $(BUILD)/bin-mode,$$^) $$(SYS_LIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call program,$(s),services)))
$(foreach t,$(TOOLS),$(eval $(call program,$(t),tools)))

$(BIN)/rt-loadgen: $(call obj,$(MODE),$(LOADGEN_SRC)) $(BUILD)/lib/$(MODE)/librt.a $(BUILD)/bin-mode
	@mkdir -p $(@D)
	$(CC) $(MODE_LDFLAGS_$(MODE)) -o $@ $(filter-out $(BUILD)/bin-mode,$^) $(SYS_LIBS)

# the bare one-write-per-delivery broadcast server, the floor of the fan-out bench (no librt)
$(BIN)/rt-bare: $(call obj,$(MODE),$(BARE_SRC)) $(BUILD)/bin-mode
	@mkdir -p $(@D)
	$(CC) $(MODE_LDFLAGS_$(MODE)) -o $@ $(filter-out $(BUILD)/bin-mode,$^) $(SYS_LIBS)

# unit tests: every tests/unit/test_NAME.c defines `void test_NAME_register(void)`;
# the list of suites is generated from the file names.
$(GEN)/unit_suites.h: FORCE
	@mkdir -p $(GEN)
	@printf '%s\n' $(foreach s,$(UNIT_SUITES),'RT_UNIT_SUITE($(s))') | cmp -s - $@ || \
		printf '%s\n' $(foreach s,$(UNIT_SUITES),'RT_UNIT_SUITE($(s))') > $@
$(call obj,asan,$(UNIT_SRC)): $(GEN)/unit_suites.h
$(BIN)/unit-tests: $(call obj,asan,$(UNIT_SRC) $(UNIT_SVC_SRC)) $(BUILD)/lib/asan/librt.a
	@mkdir -p $(@D)
	$(CC) $(MODE_LDFLAGS_asan) -o $@ $^ $(SYS_LIBS) -lcunit

# fuzz targets: clang, libFuzzer, ASan+UBSan; the library is compiled once for all of them
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -DH2O_USE_LIBUV=0 -g -O1 -Ishared/include -isystem $(GEN) $(SYS_CFLAGS) \
	-fsanitize=address,undefined -fno-sanitize-recover=undefined -w
FUZZ_LIB_OBJ := $(call obj,fuzz,$(LIB_SRC)) $(call obj,fuzz,$(PROTO_C))
.SECONDARY: $(FUZZ_LIB_OBJ)
$(BUILD)/obj/fuzz/%.o: %.c $(PROTO_H)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -MMD -MP -fsanitize=fuzzer-no-link -c $< -o $@
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_OBJ)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJ) $(SYS_LIBS)

# ---- the commands of README.md --------------------------------------------------
deps:
	@scripts/deps.sh

run: deps all
	@scripts/stack.sh run

up: deps all
	@scripts/stack.sh up

down:
	@scripts/stack.sh down

unit: $(BIN)/unit-tests
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(BIN)/unit-tests

fuzz-smoke: $(addprefix $(BUILD)/fuzz/,$(FUZZ_TARGETS))
	@scripts/fuzz.sh smoke $(FUZZ_TARGETS)

fuzz: $(addprefix $(BUILD)/fuzz/,$(FUZZ_TARGETS))
	@scripts/fuzz.sh long $(FUZZ_TARGETS)

integration: all
	@scripts/integration.sh

test: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) fuzz-smoke
	$(MAKE) integration

bench: deps all
	@scripts/bench.sh

# a 10-minute soak: 20,000 connections with steady traffic, RSS and latency every 10 s (not part of test)
.PHONY: soak
soak: deps all
	@tests/bench/soak/run.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
