# quorumkv - one non-recursive Makefile for every module.
#
#   make                 build bin/, lib/
#   make test            install missing Debian packages, build, run every test
#   make run             install missing packages, build, start the local 3-node cluster
#   make bench           benchmarks (bench/, all with bin/quorumkv-bench): issue 12's table (1 node
#                        and 3 nodes at R=W=1,2,3, 4 and 16 connections, memcached beside it, CPU
#                        per request); one node and a 3-node cluster against memcached,
#                        libquorumkv against text clients, stale reads; then anti-entropy's cost
#                        and repairs; the time to join a node to 1M keys (bench-join.sh);
#                        open-loop overload at 1.5x and 3x capacity (bench-overload.sh); then
#                        the gossip simulation of
#                        20, 100 and 1000 nodes (make bench-gossip)
#   make SANITIZE=address test   the same suite under ASan+UBSan
#   make property SEEDS=N  the version model's property test over N seeds
#
# `test`, `run` and `bench` first run scripts/deps.sh (apt-get for what is
# missing) and then call make again, so pkg-config sees the installed
# libraries; everything below is one flat dependency graph.

CC       ?= cc
PKGS     := libevent msgpack libxxhash inih libsodium
BUILD    := build
ifeq ($(SANITIZE),address)
BUILD    := build-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
OPT      ?= -O2
CFLAGS   += -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Wstrict-prototypes \
            -Wno-missing-field-initializers -MMD -MP $(SANFLAGS) \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDFLAGS  += $(SANFLAGS)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lleveldb -lm

# One archive per module; a unit test links only the modules it names in
# TEST_MODS_<test> (default: all), so a module's tests build even while
# another module is broken.  Order matters for static linking: users first.
MODULES  := server gossip storage ring common
mod_src   = $(filter-out server/main.c,$(wildcard $(1)/*.c))
mod_lib   = $(BUILD)/libqkv_$(1).a
CORE_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(foreach m,$(MODULES),$(call mod_src,$(m))))
CORE_LIBS:= $(foreach m,$(MODULES),$(call mod_lib,$(m)))

TEST_MODS_test_vclock := common
TEST_MODS_test_object := storage common
TEST_MODS_test_versions := storage common
TEST_MODS_test_store  := storage ring common
TEST_MODS_test_tictac := storage ring common
TEST_MODS_test_objcache := storage common
TEST_MODS_test_ring   := ring common
TEST_MODS_test_gossip := gossip storage ring common
TEST_MODS_test_proto  := server common
TEST_MODS_test_proto_diff := server common
TEST_MODS_test_config := server common
TEST_MODS_test_kv     := server storage common
TEST_MODS_test_frame  := common

# The simulated gossip cluster (tests/sim) measures real frame sizes with
# the daemon's message table (server/msg.c, which needs storage/ for the
# objects of other messages); test_gossip and the gossip bench link both.
SIM_OBJ  := $(BUILD)/tests/sim/gossip_sim.o $(BUILD)/server/msg.o
TEST_EXTRA_test_gossip := $(SIM_OBJ)
GOSSIP_SIM := $(BUILD)/bench/gossip-sim

# Fuzz targets (libFuzzer, clang): tests/fuzz/fuzz_<name>.c plus the sources
# in FUZZ_SRC_<name>.  `make test` replays each on its seed corpus and a few
# thousand generated inputs; `make fuzz FUZZ_SECONDS=300` fuzzes for longer.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SRC_fuzz_proto  := server/proto.c common/textproto.c
FUZZ_SRC_fuzz_object := storage/object.c common/vclock.c common/hash.c
FUZZ_SRC_fuzz_frame  := common/frame.c server/msg.c storage/object.c storage/tictac.c \
                        common/vclock.c common/hash.c
FUZZ_SRC_fuzz_gossip := $(FUZZ_SRC_fuzz_frame) gossip/gossip.c gossip/spread.c gossip/phi.c
FUZZ_BIN := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

# The sanitizer build keeps its binaries apart so a plain build never runs them.
ifeq ($(SANITIZE),address)
BINDIR   := $(BUILD)/bin
LIBDIR   := $(BUILD)/lib
else
BINDIR   := bin
LIBDIR   := lib
endif
DAEMON   := $(BINDIR)/quorumkvd

.PHONY: all test check unit integration run bench bench-gossip deps clean fuzz fuzz-smoke property
all: $(DAEMON)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# ---- client: libquorumkv, quorumkv-cli, quorumkv-bench ---------------------
# client/ depends on common/ only; bench/ on client/.  The public library is
# the client objects plus the common objects they use (hash, text-protocol
# words), and exports only qkv_* symbols: the .so through a version script
# over objects built with -fPIC in $(BUILD)/pic/, the .a through one
# relocatable object whose other globals objcopy makes local.
CLIENT_SRC    := client/io.c client/topo.c client/result.c client/client.c
CLIENT_COMMON := common/hash.c common/textproto.c
CLIENT_OBJ    := $(patsubst %.c,$(BUILD)/%.o,$(CLIENT_SRC))
CLIENT_PIC    := $(patsubst %.c,$(BUILD)/pic/%.o,$(CLIENT_SRC) $(CLIENT_COMMON))
CLIENT_LIBS   := -lxxhash -pthread
CLI           := $(BINDIR)/quorumkv-cli
BENCH         := $(BINDIR)/quorumkv-bench
QKV_EXAMPLE   := $(BUILD)/client/examples/merge
QKV_DRIVER    := $(BUILD)/tests/qkv_driver
CLIENT_ALL    := $(LIBDIR)/libquorumkv.a $(LIBDIR)/libquorumkv.so $(CLI) $(BENCH) $(QKV_EXAMPLE)
TEST_MODS_test_client_ring := client ring common
all: $(CLIENT_ALL)

$(call mod_lib,client): $(CLIENT_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -c $< -o $@

$(LIBDIR)/libquorumkv.so: $(CLIENT_PIC) client/libquorumkv.map
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libquorumkv.so -Wl,--version-script=client/libquorumkv.map \
	    -o $@ $(CLIENT_PIC) $(CLIENT_LIBS)

$(LIBDIR)/libquorumkv.a: $(CLIENT_OBJ) $(patsubst %.c,$(BUILD)/%.o,$(CLIENT_COMMON))
	@mkdir -p $(dir $@) $(BUILD)/client
	ld -r -o $(BUILD)/client/quorumkv-all.o $^
	objcopy -w --keep-global-symbol='qkv_*' $(BUILD)/client/quorumkv-all.o $(BUILD)/client/quorumkv.o
	rm -f $@ && ar rcs $@ $(BUILD)/client/quorumkv.o

$(CLI): $(BUILD)/client/cli.o $(call mod_lib,client) $(call mod_lib,common)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs libedit 2>/dev/null || echo -ledit) $(CLIENT_LIBS)
$(BUILD)/client/cli.o: CFLAGS += $(shell pkg-config --cflags libedit 2>/dev/null)

$(BENCH): $(BUILD)/bench/quorumkv-bench.o $(call mod_lib,client) $(call mod_lib,common)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CLIENT_LIBS) -lm

# The example links the installed form of the library, as a user would.
$(QKV_EXAMPLE): client/examples/merge.c $(LIBDIR)/libquorumkv.a client/quorumkv.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iclient $(LDFLAGS) -o $@ $< $(LIBDIR)/libquorumkv.a $(CLIENT_LIBS)

$(QKV_DRIVER): $(BUILD)/tests/cluster/qkv_driver.o $(call mod_lib,client) $(call mod_lib,common)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CLIENT_LIBS)

-include $(CLIENT_OBJ:.o=.d) $(CLIENT_PIC:.o=.d) $(BUILD)/client/cli.d \
         $(BUILD)/bench/quorumkv-bench.d $(BUILD)/tests/cluster/qkv_driver.d
# ---- end of client ----------------------------------------------------------

define MODULE_RULE
$(call mod_lib,$(1)): $(patsubst %.c,$(BUILD)/%.o,$(call mod_src,$(1)))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call MODULE_RULE,$(m))))

$(DAEMON): $(BUILD)/server/main.o $(CORE_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

.SECONDEXPANSION:
test_libs = $(foreach m,$(or $(TEST_MODS_$(1)),$(MODULES)),$(call mod_lib,$(m)))
$(BUILD)/tests/%: tests/unit/%.c $$(call test_libs,%) $$(TEST_EXTRA_$$*)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags cmocka 2>/dev/null) $(LDFLAGS) -o $@ $< \
	    $(TEST_EXTRA_$*) $(call test_libs,$*) $(shell pkg-config --libs cmocka 2>/dev/null) $(LDLIBS)

GOSSIP_SIM_LIBS := $(foreach m,gossip storage ring common,$(call mod_lib,$(m)))
$(GOSSIP_SIM): bench/gossip-sim.c $(SIM_OBJ) $(GOSSIP_SIM_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(SIM_OBJ) $(GOSSIP_SIM_LIBS) $(LDLIBS)

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $$(FUZZ_SRC_fuzz_$$*)
	@mkdir -p build-fuzz
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
	    -o $@ $< $(FUZZ_SRC_fuzz_$*) $(shell pkg-config --libs --cflags $(PKGS) 2>/dev/null)

fuzz-smoke: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p build-fuzz/corpus-$$n; \
	  echo "== $$f (smoke)"; $$f -runs=20000 -max_len=4096 build-fuzz/corpus-$$n tests/fuzz/seeds/$$n 2>&1 | tail -2; done

fuzz: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p build-fuzz/corpus-$$n; \
	  echo "== $$f ($(FUZZ_SECONDS)s)"; $$f -max_total_time=$(FUZZ_SECONDS) -max_len=4096 build-fuzz/corpus-$$n tests/fuzz/seeds/$$n; done

deps:
	@scripts/deps.sh

# The entry points a user types: set up, then build and run in a fresh make.
test: deps
	@$(MAKE) --no-print-directory check

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run-cluster.sh

bench: deps
	@$(MAKE) --no-print-directory all $(GOSSIP_SIM) $(LOOPBACK_RTT)
	@bench/bench-table.sh
	@bench/bench-memcached.sh
	@bench/bench-cluster.sh
	@bench/stale-reads.sh
	@bench/bench-antientropy.sh
	@bench/bench-join.sh
	@bench/bench-overload.sh
	@$(GOSSIP_SIM)

# mc_parse()'s instructions per line, for bench/parse-cost.sh
PARSE_COST := $(BUILD)/bench/parse-cost
$(PARSE_COST): bench/parse-cost.c $(call mod_lib,server) $(call mod_lib,common)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(call mod_lib,server) $(call mod_lib,common)

# The floor under one replica round trip (bench/bench-table.sh prints it)
LOOPBACK_RTT := $(BUILD)/bench/loopback-rtt
$(LOOPBACK_RTT): bench/loopback-rtt.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

# Only the gossip simulation (a few minutes, no daemons): make bench-gossip
bench-gossip: $(GOSSIP_SIM)
	@$(GOSSIP_SIM)

check: all $(UNIT_BIN) $(QKV_DRIVER)
	@$(MAKE) --no-print-directory unit fuzz-smoke integration

# The version model's property test over many more seeds than `make test`
# runs (tests/unit/test_versions.c): make property SEEDS=20000 SEED0=1
SEEDS ?= 5000
SEED0 ?= 1000
property: $(BUILD)/tests/test_versions
	QKV_SEEDS=$(SEEDS) QKV_SEED0=$(SEED0) $(BUILD)/tests/test_versions

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# Two pytest sessions: each folder's tests import helpers from their own
# conftest.py, which one session could not tell apart.
PYTEST = QKV_BIN=$(CURDIR)/$(DAEMON) QKV_CLI=$(CURDIR)/$(CLI) QKV_BENCH=$(CURDIR)/$(BENCH) \
         QKV_DRIVER=$(CURDIR)/$(QKV_DRIVER) QKV_EXAMPLE=$(CURDIR)/$(QKV_EXAMPLE) QKV_LIBDIR=$(CURDIR)/$(LIBDIR) /usr/bin/python3 -m pytest -q -ra -p no:cacheprovider $(PYTEST_ARGS)
integration: all $(QKV_DRIVER)
	cd tests/integration && $(PYTEST) .
	cd tests/cluster && $(PYTEST) .

clean:
	rm -rf build build-asan build-fuzz bin lib

-include $(CORE_OBJ:.o=.d) $(BUILD)/server/main.d $(UNIT_BIN:=.d) $(SIM_OBJ:.o=.d) $(GOSSIP_SIM).d $(PARSE_COST).d $(LOOPBACK_RTT).d
