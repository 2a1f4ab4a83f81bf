# flint -- one plain Makefile: explicit object lists, generated dependencies.
#
#   make            build bin/flint (and the C examples)
#   make deps       install every Debian package the build, tests and benchmarks need
#   make run        deps + build + start flint serve with the examples deployed
#   make test       unit tests (cmocka) then integration tests (pytest, real daemon)
#   make bench      side-by-side benchmarks (see bench/)
#   make fmt        clang-format every source file in place; make fmt-check for CI
#   make SANITIZE=1 address+undefined sanitizers

CC      ?= cc
LLHTTP_SRC ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
PY      ?= /usr/bin/python3
B       := build

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter -Wno-format-truncation
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu17 $(WARN) -D_GNU_SOURCE -Isrc -I$(LLHTTP_INC) -MMD -MP -pthread
LDFLAGS += -pthread
ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -O1
LDFLAGS += -fsanitize=address,undefined
B       := build-san
endif

LIBS    := -lnghttp2 -luv -lsqlite3 -ljansson -lyaml -lcurl -lm -lseccomp -lhiredis -lnats

CORE_OBJ := core/log.o core/util.o core/buf.o core/sha256.o core/yaml.o \
            net/listen.o net/httpd.o
DAEMON_OBJ := gateway/gateway.o gateway/snapshot.o gateway/router.o \
            gateway/dispatcher.o gateway/upstream.o proto/http1.o proto/http2.o proto/thrift.o proto/thrift_wire.o \
            control/control.o control/spec.o control/registry.o control/blobs.o \
            control/admin_api.o control/instances.o control/autoscaler.o \
            control/logstore.o control/probe.o control/openfaas.o runtime/spawner.o runtime/sandbox_linux.o runtime/cgroup.o \
            runtime/seccomp.o obs/metrics.o
EVENTS_OBJ := events/async.o events/async_api.o events/triggers.o events/cron.o events/trigger_spec.o \
            events/trigger_redis.o events/trigger_nats.o
CLI_OBJ  := cli/client.o cli/cmd_deploy.o cli/cmd_misc.o cli/cmd_logs.o cli/cmd_invoke.o cli/cmd_requests.o cli/cmd_new.o
MAIN_OBJ := main.o
LLHTTP_OBJ := llhttp/llhttp.o llhttp/api.o llhttp/http.o

ALL_OBJ  := $(addprefix $(B)/,$(CORE_OBJ) $(DAEMON_OBJ) $(EVENTS_OBJ) $(CLI_OBJ) $(MAIN_OBJ) $(LLHTTP_OBJ))
LIB_OBJ  := $(addprefix $(B)/,$(CORE_OBJ) $(DAEMON_OBJ) $(EVENTS_OBJ) $(CLI_OBJ) $(LLHTTP_OBJ))

UNIT_TESTS := test_util test_router test_spec test_snapshot test_autoscaler test_yaml test_sha256 \
              test_spawner test_cgroup test_registry test_logstore test_httpd test_listen test_blobs \
              test_cron test_thrift_wire
UNIT_BIN := $(addprefix $(B)/tests/,$(UNIT_TESTS))

EXAMPLES := examples/hello-c/hello

.PHONY: all deps run test unit integration bench fmt fmt-check clean examples

all: bin/flint examples

bin/flint: $(ALL_OBJ)
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

integration: all
	$(PY) -m pytest -q -x tests/integration $(PYTEST_ARGS)

test: unit integration

bench: all
	@sh bench/run.sh

SRC_FILES = $(shell find src tests/unit bench examples -name '*.[ch]')
fmt:
	clang-format -i $(SRC_FILES)

fmt-check:
	clang-format --dry-run -Werror $(SRC_FILES)

clean:
	rm -rf build build-san bin $(EXAMPLES)

-include $(shell find build build-san -name '*.d' 2>/dev/null)
