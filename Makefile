# flint -- one plain Makefile: explicit object lists, generated dependencies.
#
#   make            build bin/flint (and the C examples)
#   make deps       install every Debian package the build, tests and benchmarks need
#   make run        deps + build + start flint serve with the examples deployed
#   make test       unit tests (cmocka) then integration tests (pytest, real daemon)
#   make bench      side-by-side benchmarks (see bench/)
#   make fmt        clang-format every source file in place; make fmt-check for CI
#   make fuzz       libFuzzer targets (tests/fuzz), each run FUZZ_SECONDS; fuzz-smoke: 10 s each
#   make SANITIZE=1 address+undefined sanitizers (bin/flint-san; `make SANITIZE=1 test` runs every test on it)

CC      ?= cc
LLHTTP_SRC ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
PY      ?= /usr/bin/python3
B       := build

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter -Wno-format-truncation
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu17 $(WARN) -D_GNU_SOURCE -Isrc -I$(LLHTTP_INC) -MMD -MP -pthread
LDFLAGS += -pthread
FLINT   := bin/flint
ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -O1
LDFLAGS += -fsanitize=address,undefined
B       := build-san
# A sanitized daemon lives beside the normal one, so neither clobbers the other.
FLINT   := bin/flint-san
endif

LIBS    := -lnghttp2 -luv -lsqlite3 -ljansson -lyaml -lcurl -lm -lseccomp -lhiredis -lnats -larchive

CORE_OBJ := core/log.o core/util.o core/buf.o core/sha256.o core/yaml.o core/base64.o \
            net/listen.o net/httpd.o
DAEMON_OBJ := gateway/gateway.o gateway/snapshot.o gateway/router.o \
            gateway/dispatcher.o gateway/upstream.o proto/http1.o proto/http1_exchange.o proto/http1_local.o \
            proto/http2.o proto/http2_up.o proto/http2_h1.o proto/thrift.o proto/thrift_wire.o \
            control/control.o control/spec.o control/registry.o control/blobs.o \
            control/admin_api.o control/instances.o control/publish.o control/autoscaler.o \
            control/logstore.o control/probe.o control/readiness.o control/openfaas.o control/secrets.o control/secrets_api.o control/versions.o control/image.o runtime/spawner.o runtime/spawner_proc.o runtime/spawner_pool.o runtime/pyzygote.o runtime/sandbox_linux.o runtime/cgroup.o \
            runtime/seccomp.o runtime/netns.o obs/metrics.o
EVENTS_OBJ := events/async.o events/async_worker.o events/async_gw.o events/async_api.o events/triggers.o events/cron.o events/trigger_spec.o \
            events/trigger_redis.o events/trigger_nats.o
CLI_OBJ  := cli/client.o cli/cmd_deploy.o cli/cmd_misc.o cli/cmd_logs.o cli/cmd_invoke.o cli/cmd_requests.o cli/cmd_new.o cli/cmd_versions.o cli/cmd_secret.o cli/cmd_top.o
MAIN_OBJ := main.o
LLHTTP_OBJ := llhttp/llhttp.o llhttp/api.o llhttp/http.o

ALL_OBJ  := $(addprefix $(B)/,$(CORE_OBJ) $(DAEMON_OBJ) $(EVENTS_OBJ) $(CLI_OBJ) $(MAIN_OBJ) $(LLHTTP_OBJ))
LIB_OBJ  := $(addprefix $(B)/,$(CORE_OBJ) $(DAEMON_OBJ) $(EVENTS_OBJ) $(CLI_OBJ) $(LLHTTP_OBJ))

UNIT_TESTS := test_util test_router test_spec test_snapshot test_autoscaler test_yaml test_sha256 \
              test_spawner test_cgroup test_registry test_logstore test_httpd test_listen test_blobs \
              test_cron test_thrift_wire test_seccomp
UNIT_BIN := $(addprefix $(B)/tests/,$(UNIT_TESTS))

EXAMPLES := examples/hello-c/hello

.PHONY: all deps run test unit integration bench fmt fmt-check clean examples fuzz fuzz-smoke fuzz-build

all: $(FLINT) examples

$(FLINT): $(ALL_OBJ)
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -std=gnu17 -I$(LLHTTP_INC) -MMD -MP -c -o $@ $<

$(B)/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# Unit tests #include the .c files of the module under test (so they reach its
# statics, as h2o's t/00unit does) and link only the small base below.
UNIT_BASE := $(addprefix $(B)/,core/log.o core/util.o core/buf.o core/sha256.o $(LLHTTP_OBJ))
$(B)/tests/%: tests/unit/%.c $(UNIT_BASE)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(UNIT_BASE) $(LDFLAGS) $(LIBS) -lcmocka

examples: $(EXAMPLES)

examples/hello-c/hello: examples/hello-c/hello.c
	$(CC) -O2 -Wall -o $@ $<

deps:
	@sh scripts/deps.sh

run: deps all
	@sh scripts/run.sh

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; timeout 60 $$t; done

# With SANITIZE=1 the suite drives bin/flint-san; any ASan/UBSan report or leak
# makes the daemon exit non-zero, which the suite's teardown reports as a failure.
SAN_ENV := ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
integration: all
	FLINT_BIN=$(abspath $(FLINT)) $(if $(filter 1,$(SANITIZE)),$(SAN_ENV)) \
		$(PY) -m pytest -q -x tests/integration $(PYTEST_ARGS)

test: unit integration

# The side-by-side HTTP/1.1 table first (bench/run.sh), then HTTP/2 and gRPC,
# Thrift, async and cold starts; each prints its own table. BENCH_ONLY=h2 (or
# run, thrift, async, coldstart) runs one.
BENCH_SCRIPTS := run h2 thrift async coldstart netns
bench: all
	@set -e; for b in $(or $(BENCH_ONLY),$(BENCH_SCRIPTS)); do \
		echo "== bench/$$b.sh"; sh bench/$$b.sh; done

# Fuzzing (clang + libFuzzer). Targets that #include the parser's .c link the
# small base; fuzz_sniff reaches the codec table, so it links the whole daemon:
# the codecs instrumented, the rest as built for bin/flint.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FZ           := build-fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -g -O1 -std=gnu17 -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -Isrc \
                -I$(LLHTTP_INC) -MMD -MP -pthread $(FUZZ_SAN)
FUZZ_TARGETS := fuzz_thrift_wire fuzz_router fuzz_spec fuzz_yaml fuzz_cron fuzz_sniff \
                fuzz_http1_head
FUZZ_BIN     := $(addprefix $(FZ)/,$(FUZZ_TARGETS))
FUZZ_BASE    := $(addprefix $(FZ)/obj/,core/log.o core/util.o core/buf.o core/sha256.o $(LLHTTP_OBJ))
FUZZ_CODECS  := proto/http2.o proto/http2_up.o proto/http2_h1.o proto/thrift.o proto/thrift_wire.o
FUZZ_LIB     := $(addprefix $(FZ)/obj/,$(FUZZ_CODECS) $(LLHTTP_OBJ)) \
                $(addprefix build/,$(filter-out $(FUZZ_CODECS),$(CORE_OBJ) $(DAEMON_OBJ) $(EVENTS_OBJ) $(CLI_OBJ)))

$(FZ)/obj/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer-no-link $(FUZZ_SAN) -I$(LLHTTP_INC) -MMD -MP -c -o $@ $<

$(FZ)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FZ)/fuzz_sniff: tests/fuzz/fuzz_sniff.c $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Werror -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB) $(LIBS)

$(FZ)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BASE)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Werror -fsanitize=fuzzer -o $@ $< $(FUZZ_BASE) $(LIBS)

fuzz-build: $(FUZZ_BIN)

# New inputs go to build-fuzz/corpus/T; the seeds in tests/fuzz/corpus/T stay as they are.
# A crash leaves build-fuzz/crash-T-* and fails the run.
fuzz: $(FUZZ_BIN)
	@set -e; for t in $(FUZZ_TARGETS); do echo "== $$t ($(FUZZ_SECONDS) s)"; \
	  mkdir -p $(FZ)/corpus/$$t; \
	  $(FZ)/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=$(FZ)/crash-$$t- $(FZ)/corpus/$$t tests/fuzz/corpus/$$t 2>$(FZ)/$$t.log \
	    || { tail -40 $(FZ)/$$t.log; exit 1; }; \
	  grep -E '^#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec' $(FZ)/$$t.log; done

fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10

SRC_FILES = $(shell find src tests/unit tests/fuzz bench examples -name '*.[ch]')
fmt:
	clang-format -i $(SRC_FILES)

fmt-check:
	clang-format --dry-run -Werror $(SRC_FILES)

clean:
	rm -rf build build-san build-fuzz bin $(EXAMPLES)

-include $(shell find build build-san build-fuzz -name '*.d' 2>/dev/null)
