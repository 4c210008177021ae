# quorumkv - one non-recursive Makefile for every module.
#
#   make                 build bin/, lib/
#   make test            install missing Debian packages, build, run every test
#   make run             install missing packages, build, start the local 3-node cluster
#   make bench           benchmarks against memcached: one node, then a 3-node cluster;
#                        then anti-entropy's cost and repairs (bench/)
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
TEST_MODS_test_ring   := ring common
TEST_MODS_test_gossip := gossip ring common
TEST_MODS_test_proto  := server common
TEST_MODS_test_config := server common
TEST_MODS_test_kv     := server storage common
TEST_MODS_test_frame  := common

# Fuzz targets (libFuzzer, clang): tests/fuzz/fuzz_<name>.c plus the sources
# in FUZZ_SRC_<name>.  `make test` replays each on its seed corpus and a few
# thousand generated inputs; `make fuzz FUZZ_SECONDS=300` fuzzes for longer.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SRC_fuzz_proto  := server/proto.c
FUZZ_SRC_fuzz_object := storage/object.c common/vclock.c common/hash.c
FUZZ_SRC_fuzz_frame  := common/frame.c server/msg.c storage/object.c storage/tictac.c \
                        common/vclock.c common/hash.c
FUZZ_BIN := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

# The sanitizer build keeps its binary apart so a plain build never runs it.
ifeq ($(SANITIZE),address)
DAEMON   := $(BUILD)/bin/quorumkvd
else
DAEMON   := bin/quorumkvd
endif

.PHONY: all test check unit integration run bench deps clean fuzz fuzz-smoke property
all: $(DAEMON)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

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
$(BUILD)/tests/%: tests/unit/%.c $$(call test_libs,%)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags cmocka 2>/dev/null) $(LDFLAGS) -o $@ $< \
	    $(call test_libs,$*) $(shell pkg-config --libs cmocka 2>/dev/null) $(LDLIBS)

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
	@$(MAKE) --no-print-directory all
	@bench/bench-memcached.sh
	@bench/bench-cluster.sh
	@bench/bench-antientropy.sh

check: all $(UNIT_BIN)
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
PYTEST = QKV_BIN=$(CURDIR)/$(DAEMON) /usr/bin/python3 -m pytest -q -ra -p no:cacheprovider $(PYTEST_ARGS)
integration: all
	cd tests/integration && $(PYTEST) .
	cd tests/cluster && $(PYTEST) .

clean:
	rm -rf build build-asan build-fuzz bin lib

-include $(CORE_OBJ:.o=.d) $(BUILD)/server/main.d $(UNIT_BIN:=.d)
