# hpprouter - smart-routing engine for the virtual model hpprouter/auto.
#
# Public targets (those marked * install missing Debian packages first, see `deps`):
#   make            build everything into build/ (installs nothing: `make deps` does)
#   make test *     unit + integration tests, fuzz targets over their seed corpus
#   make asan *     the same suite under AddressSanitizer + UBSan (fails on any report)
#   make run *      start engine + sidecar on the bundled policy and catalog
#                   (ENGINES=3 make run: three engines behind it, over CURVE)
#   make bench *    benchmarks (see bench/README.md)
#   make fuzz *     run every libFuzzer target for FUZZ_SECONDS each
#   make fuzz-long * every fuzz target to depth (FUZZ_LONG_SECONDS in all), record tests/fuzz/RESULTS.md
#   make format     clang-format the tree;  make format-check  checks it
#   make layering   the include graph between folders, checked one-way
#   make lint *     format-check, and shellcheck over every shell script (CI runs it)
#   make install    binaries, bundled policy and catalog, man pages, systemd units and
#                   their configuration (PREFIX=/usr/local, DESTDIR, CFLAGS, CPPFLAGS, LDFLAGS)
#   make deb *      the Debian package (dpkg-buildpackage -us -uc -b), into build-deb/
#   make deb-test * builds it, unpacks it into a temporary root, runs both services from there
#
# Public targets re-enter make after `deps` so that pkg-config is asked only
# once the libraries are there.

BUILD ?= build
FUZZ_SECONDS ?= 30

# Debian packages the build, the tests and `make run` need.
DEPS_PKGS := build-essential pkg-config clang libclang-rt-14-dev libevent-dev libmsgpack-dev \
             libzmq3-dev libsodium-dev libcriterion-dev libjansson-dev python3 python3-zmq \
             python3-msgpack curl libsystemd-dev mandoc groff-base libvectorscan-dev \
             libsqlite3-dev shellcheck
# The ledger's Redis store: hiredis for the engine, redis-server and redis-cli
# for the tests, which start their own server on a unix socket.
DEPS_PKGS += redis-server redis-tools libhiredis-dev
# What `make deb` needs on top (debian/control's Build-Depends).
DEB_DEPS_PKGS := debhelper dpkg-dev fakeroot

.PHONY: all test asan run bench fuzz fuzz-long deps deps-deb format format-check lint clean help layering _all _fuzz-smoke \
        _fuzz install deb deb-test _bins _have-libs

# Plain `make` installs no package: without the libraries it says which
# target does.
all:
	@$(MAKE) --no-print-directory _have-libs
	@$(MAKE) --no-print-directory $(JFLAG) _all

# Builds use every core unless told otherwise (JOBS=1 for a serial build):
# make test must stay under 5 minutes on 2 cores, builds from scratch included.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# ... unless make was given -j itself (its job server then already applies).
JFLAG = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(JOBS))

# One make for the builds and the fuzz smoke: its jobs keep both cores busy
# through each other's link steps and single long runs.
test: deps
	@$(MAKE) --no-print-directory $(JFLAG) _all _fuzz-smoke
	@HPP_BUILD=$(BUILD) bash tests/run.sh

asan: deps
	@$(MAKE) --no-print-directory $(JFLAG) BUILD=build-asan SAN=1 _all
	@HPP_BUILD=build-asan HPP_SAN=1 bash tests/run.sh

# Engine on tcp://127.0.0.1:5555, sidecar on 127.0.0.1:8080; Ctrl-C stops both.
# ENGINES=N starts N engines (1-8) on consecutive ports from ENGINE_LISTEN's,
# all behind the one sidecar. With ENGINES > 1 (or CURVE=1; CURVE=0 turns it
# off) every link is CURVE: keys made once by hpp-engine --curve-keygen into
# .state/keys (git-ignored), the sidecar's public key the engines' one allowed
# client. Without CURVE the sidecar asks each engine on its direct listener
# (--direct ipc://.state/engine-N.sock: no libzmq I/O thread between, see
# sidecar/README.md), and the ROUTER on the port still serves other clients.
# The sidecar starts once every engine has said it is ready (their
# stderr goes to the terminal and to a temporary file watched for that line),
# so a request right after the sidecar's "ready" is not a 503; an engine that
# fails to start ends make run with its error. On Ctrl-C the engines get the
# terminal's SIGINT themselves: they are given 2 s to drain before the recipe
# stops them.
ENGINE_LISTEN ?= tcp://127.0.0.1:5555
SIDECAR_LISTEN ?= 127.0.0.1:8080
ENGINES ?= 1
CURVE ?= $(if $(filter 1,$(ENGINES)),0,1)
STATE ?= .state
run: SHELL := /bin/bash
run: deps
	@$(MAKE) --no-print-directory _all
	@case "$(ENGINES)" in [1-8]) ;; *) echo "ENGINES=$(ENGINES): expected 1 to 8" >&2; exit 2;; esac; \
	 ep='$(ENGINE_LISTEN)'; host=$${ep%:*}; port=$${ep##*:}; curve=(); sc_curve=(); \
	 mkdir -p -m 700 $(STATE) || exit 1; \
	 if [ "$(CURVE)" = 1 ]; then \
	     keys=$(STATE)/keys; \
	     for n in engine sidecar; do \
	         [ -f "$$keys/$$n.sec" ] || $(BUILD)/hpp-engine --curve-keygen "$$keys" --curve-name $$n || exit 1; \
	     done; \
	     printf '%s sidecar\n' "$$(grep -v '^#' "$$keys/sidecar.pub" | head -n 1 | cut -d' ' -f1)" \
	         >$(STATE)/clients || exit 1; \
	     curve=(--curve-secret "$$keys/engine.sec" --curve-clients $(STATE)/clients); \
	     sc_curve=(--engine-curve-server-key "$$keys/engine.pub" --curve-secret "$$keys/sidecar.sec"); \
	 fi; \
	 log=$$(mktemp); \
	 exec 3> >(tee "$$log" >&2); tee=$$!; \
	 engines=(); eps=(); \
	 for i in $$(seq 0 $$(($(ENGINES) - 1))); do \
	     e=$$host:$$((port + i)); direct=(); \
	     if [ "$(CURVE)" = 1 ]; then eps+=(--engine "$$e"); \
	     else d=ipc://$(STATE)/engine-$$i.sock; direct=(--direct "$$d"); eps+=(--engine "$$d"); fi; \
	     $(BUILD)/hpp-engine --listen "$$e" "$${curve[@]}" "$${direct[@]}" 2>&3 & engines+=($$!); \
	 done; \
	 exec 3>&-; \
	 up() { local p; for p in "$${engines[@]}"; do kill -0 $$p 2>/dev/null && return 0; done; return 1; }; \
	 trap 'for _ in $$(seq 40); do up || break; sleep 0.05; done; \
	       kill "$${engines[@]}" 2>/dev/null; wait "$${engines[@]}"; wait $$tee; rm -f "$$log"' EXIT INT TERM; \
	 for _ in $$(seq 200); do \
	     [ "$$(grep -c '^hpp-engine: ready on ' "$$log")" -ge $(ENGINES) ] && break; \
	     for p in "$${engines[@]}"; do kill -0 $$p 2>/dev/null || exit 1; done; \
	     sleep 0.05; \
	 done; \
	 $(BUILD)/hpp-sidecar --listen $(SIDECAR_LISTEN) "$${eps[@]}" "$${sc_curve[@]}"

bench: deps
	@$(MAKE) --no-print-directory BUILD=build-bench CFLAGS="-O2 -g" _all
	@HPP_BUILD=build-bench bash bench/run.sh

fuzz: deps
	@$(MAKE) --no-print-directory _fuzz
	@for f in $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%); do \
	    n=$$(basename $$f); mkdir -p build-fuzz/corpus/$$n; \
	    echo "== $$n ($(FUZZ_SECONDS)s)"; \
	    d=; [ -f tests/fuzz/$$n.dict ] && d=-dict=tests/fuzz/$$n.dict; \
	    o=$$(bash tests/fuzz/long.sh --options $$n) || exit 1; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $$d $$o build-fuzz/corpus/$$n \
	        tests/fuzz/corpus/$$n || exit 1; \
	done

# Every fuzz target to depth: FUZZ_LONG_SECONDS in all, at most FUZZ_LONG_RUNS
# executions each; writes tests/fuzz/RESULTS.md and merges new seeds.
FUZZ_LONG_SECONDS ?= 10800
FUZZ_LONG_RUNS ?= 10000000
fuzz-long: deps
	@$(MAKE) --no-print-directory _fuzz
	@bash tests/fuzz/long.sh --seconds $(FUZZ_LONG_SECONDS) --runs $(FUZZ_LONG_RUNS)

# Installs exactly the missing packages. Needs root (or sudo) only when something is missing.
deps:
	@$(call install_missing,$(DEPS_PKGS))

deps-deb: deps
	@$(call install_missing,$(DEB_DEPS_PKGS))

install_missing = missing=""; for p in $(1); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

help:
	@sed -n '3,18p' Makefile

# The include graph between the top-level folders, checked against the
# layering of README.md ("Layout of the code"); tests/integration/layering.sh
# runs it in `make test`.
layering:
	@bash tests/check_layers.sh

# Installed layout: programs in BINDIR, the bundled policy, cases, examples
# and catalog in DATADIR (where the programs look for them: next to
# themselves, ../share/hpprouter), man pages, systemd units (ExecStart
# pointing at BINDIR) and their flag files in SYSCONFDIR/hpprouter, which is
# /etc whatever PREFIX is. State (keys, decision logs) lives in
# /var/lib/hpprouter, which the units' StateDirectory= makes.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/hpprouter
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
INSTALL ?= install
MAN_PAGES := man/hpp-engine.8 man/hpp-sidecar.8 man/hpp-policy.1 man/hpp-policy.5 man/hpp-ledger.1
UNITS := dist/hpp-engine.service dist/hpp-sidecar.service
CONFS := dist/engine.conf dist/sidecar.conf

install:
	@$(MAKE) --no-print-directory _have-libs
	@$(MAKE) --no-print-directory $(JFLAG) _bins install-client
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/cases $(DESTDIR)$(DATADIR)/examples/shared \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/hpprouter
	$(INSTALL) -m 755 $(BUILD)/hpp-engine $(BUILD)/hpp-sidecar $(BUILD)/hpp-policy $(BUILD)/hpp-ledger \
	    $(DESTDIR)$(BINDIR)
	$(INSTALL) -m 644 policies/default.policy policies/catalog.json $(DESTDIR)$(DATADIR)
	$(INSTALL) -m 644 policies/cases/default.cases $(DESTDIR)$(DATADIR)/cases
	$(INSTALL) -m 644 policies/examples/*.policy $(DESTDIR)$(DATADIR)/examples
	$(INSTALL) -m 644 policies/examples/shared/*.policy $(DESTDIR)$(DATADIR)/examples/shared
	$(INSTALL) -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1
	$(INSTALL) -m 644 man/*.5 $(DESTDIR)$(MANDIR)/man5
	$(INSTALL) -m 644 man/*.8 $(DESTDIR)$(MANDIR)/man8
	for u in $(UNITS); do \
	    sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' $$u \
	        >$(DESTDIR)$(UNITDIR)/$$(basename $$u) && chmod 644 $(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; \
	done
	$(INSTALL) -m 644 $(CONFS) $(DESTDIR)$(SYSCONFDIR)/hpprouter

# The Debian package, built out of tree from a clean copy of the committed
# files plus the working tree's changes (dpkg-buildpackage wants the source
# directory to itself), into build-deb/.
deb: deps-deb
	@bash debian/build.sh build-deb

# Builds the package, unpacks it into a temporary root (never installed on
# this system) and runs both services from there as their units would.
deb-test: deb
	@bash tests/integration/deb_package.bash build-deb

# ----------------------------------------------------------------------------
# Internal targets: called by the public ones after `deps`.

PKGS := libzmq libsodium msgpack libevent jansson libsystemd libhs sqlite3
PKGS += hiredis
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
CFLAGS ?= -O2 -g
ifdef SAN
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
endif
# Empty on a fresh machine before `deps`; the public targets re-enter make after it.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) libevent_pthreads 2>/dev/null)
# Include paths follow the layering (README.md, "Layout of the code"): a
# folder sees itself and the folders below it, so an include that points up
# does not compile. tests/ and bench/ sit on top and see everything.
INC_proto := -Iproto
INC_engine := -Iengine -Iproto
INC_sidecar := -Isidecar -Iengine -Iproto
INC_policies := -Ipolicies/tool -Iengine -Iproto
INC_tools := -Itools -Iproto
INC_tests := -Itests/support -Isidecar -Iengine -Iproto
INC_bench := $(INC_tests)
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) $(SANFLAGS) -pthread $(PKG_CFLAGS) -MMD -MP
LDLIBS_ALL = $(LDFLAGS) $(SANFLAGS) $(PKG_LIBS) -lm -pthread

PROTO_SRC := $(wildcard proto/*.c)
ENG_SRC := $(wildcard engine/eng_*.c)
SC_SRC := $(wildcard sidecar/sc_*.c)
TOOL_SRC := $(wildcard policies/tool/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
ITEST_SRC := $(wildcard tests/integration/test_*.c)
BENCH_SRC := $(wildcard bench/*.c)
EXAMPLE_SRC := $(wildcard proto/examples/*.c)

PROTO_OBJ := $(PROTO_SRC:%.c=$(BUILD)/obj/%.o)
ENG_OBJ := $(ENG_SRC:%.c=$(BUILD)/obj/%.o)
SC_OBJ := $(SC_SRC:%.c=$(BUILD)/obj/%.o)
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/obj/%.o)

BINS := $(BUILD)/hpp-policy $(BUILD)/hpp-engine $(BUILD)/hpp-sidecar $(BUILD)/hpp-ledger
BINS += $(EXAMPLE_SRC:proto/examples/%.c=$(BUILD)/examples/%)
BINS += $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
TESTS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%) \
         $(ITEST_SRC:tests/integration/%.c=$(BUILD)/tests/i%)

_all: $(BINS) $(TESTS)

_bins: $(BUILD)/hpp-policy $(BUILD)/hpp-engine $(BUILD)/hpp-sidecar $(BUILD)/hpp-ledger

_have-libs:
	@pkg-config --exists $(PKGS) || { echo "make: libraries missing (pkg-config $(PKGS)); \
	'make deps' installs them" >&2; exit 2; }

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(INC_$(firstword $(subst /, ,$<))) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

# The source commit of the *_build_info metrics (proto/hpp_procstats.c), "unknown"
# outside a git checkout. The stamp file is rewritten (at parse time, so an
# unchanged commit rebuilds nothing) only when the commit differs, and that
# one object depends on it.
HPP_COMMIT := $(shell git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
ifneq ($(HPP_COMMIT),$(shell cat $(BUILD)/commit.stamp 2>/dev/null))
$(shell mkdir -p $(BUILD) && echo '$(HPP_COMMIT)' >$(BUILD)/commit.stamp)
endif
$(BUILD)/obj/proto/hpp_procstats.o: $(BUILD)/commit.stamp
$(BUILD)/obj/proto/hpp_procstats.o: CPPFLAGS += -DHPP_COMMIT='"$(HPP_COMMIT)"'

# One archive per layer, linked top first: the sidecar's, the engine's
# (decision library and service), the protocol's.
$(BUILD)/libhppproto.a: $(PROTO_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libhppeng.a: $(ENG_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libsc.a: $(SC_OBJ)
	@rm -f $@
	ar rcs $@ $^

ENG_LIBS := $(BUILD)/libhppeng.a $(BUILD)/libhppproto.a
ALL_LIBS := $(BUILD)/libsc.a $(ENG_LIBS)

# hpp-policy reads OpenAI bodies with the protocol's reader (proto/oai_request.c),
# not with anything of the sidecar's.
$(BUILD)/hpp-policy: $(TOOL_OBJ) $(ENG_LIBS)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/hpp-engine: $(BUILD)/obj/engine/hpp_engine.o $(ENG_LIBS)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/hpp-sidecar: $(BUILD)/obj/sidecar/hpp_sidecar.o $(ALL_LIBS)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_ALL)

# hpp-ledger edits the key file and speaks the engine's ledger op: proto/ only.
LEDGER_SRC := $(wildcard tools/*.c)
$(BUILD)/hpp-ledger: $(LEDGER_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/libhppproto.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_ALL)

# libhppclient: the C client as a shared library for gateways. Its own
# position-independent objects, built -fvisibility=hidden: only what
# proto/hpprouter/client.h marks HPP_CLIENT_API is exported.
CLIENT_MAJOR := 1
CLIENT_MINOR := 0
CLIENT_SRC := $(addprefix proto/,hpp_client.c hpp_client_msg.c hpp_keys.c hpp_file.c hpp_types.c \
              hpp_request.c proto_mp.c proto_request.c proto_reply.c proto_report.c proto_json.c)
CLIENT_SO := libhppclient.so.$(CLIENT_MAJOR).$(CLIENT_MINOR)
CLIENT_LIB := $(BUILD)/libhppclient.so
_all: $(CLIENT_LIB)

# The examples use the public client API only, and link the shared library
# as a gateway would (found next to them through the rpath).
$(BUILD)/examples/%: $(BUILD)/obj/proto/examples/%.o $(CLIENT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< -L$(BUILD) -lhppclient -Wl,-rpath,'$$ORIGIN/..' $(LDFLAGS) $(SANFLAGS)

.PHONY: install-client
$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(INC_proto) $(CPPFLAGS) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

$(BUILD)/$(CLIENT_SO): $(CLIENT_SRC:%.c=$(BUILD)/pic/%.o)
	$(CC) -shared -Wl,-soname,libhppclient.so.$(CLIENT_MAJOR) -Wl,--no-undefined $(CFLAGS) \
	    -o $@ $^ $(LDFLAGS) $(SANFLAGS) $(shell pkg-config --libs libzmq 2>/dev/null) -lm -pthread

$(CLIENT_LIB): $(BUILD)/$(CLIENT_SO)
	ln -sf $(CLIENT_SO) $(BUILD)/libhppclient.so.$(CLIENT_MAJOR)
	ln -sf $(CLIENT_SO) $@

# Installs the library, its header and hppclient.pc under
# $(DESTDIR)$(PREFIX) (`make install` depends on it).
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
install-client: $(CLIENT_LIB)
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/hpprouter
	install -m 0644 $(BUILD)/$(CLIENT_SO) $(DESTDIR)$(LIBDIR)/$(CLIENT_SO)
	ln -sf $(CLIENT_SO) $(DESTDIR)$(LIBDIR)/libhppclient.so.$(CLIENT_MAJOR)
	ln -sf $(CLIENT_SO) $(DESTDIR)$(LIBDIR)/libhppclient.so
	install -m 0644 proto/hpprouter/client.h $(DESTDIR)$(INCLUDEDIR)/hpprouter/client.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(CLIENT_MAJOR).$(CLIENT_MINOR)|' clients/c/hppclient.pc.in \
	    >$(DESTDIR)$(LIBDIR)/pkgconfig/hppclient.pc

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_ALL)

# Every Criterion binary links tests/support/cr_runner.c (why: its comment)
# and test_tmpdir.c (a test's own folder).
TEST_SUPPORT := $(BUILD)/obj/tests/support/cr_runner.o $(BUILD)/obj/tests/support/test_tmpdir.o
$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TEST_SUPPORT) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_ALL) -lcriterion

$(BUILD)/tests/itest_%: $(BUILD)/obj/tests/integration/test_%.o $(TEST_SUPPORT) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_ALL) -lcriterion

# libFuzzer targets: clang, ASan + UBSan, their own object tree (the library is
# compiled once with coverage instrumentation and linked into every target).
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS = -std=gnu11 -g -O1 $(FUZZ_SAN) $(INC_tests) $(PKG_CFLAGS) -MMD -MP
FUZZ_OBJ := $(patsubst %.c,build-fuzz/obj/%.o,$(PROTO_SRC) $(ENG_SRC) $(SC_SRC))

_fuzz: $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)

build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

# An archive, so each target links only the objects it calls: libFuzzer scans
# every linked coverage counter after each input, so unused code costs speed.
build-fuzz/libfuzz.a: $(FUZZ_OBJ)
	rm -f $@
	ar rcs $@ $^

build-fuzz/fuzz_%: build-fuzz/obj/tests/fuzz/fuzz_%.o build-fuzz/libfuzz.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS) -lm -pthread

# fuzz_policy links its own copies of the policy front end and compiler (lexer,
# parser, diagnostics, passes, regex compiler) built without comparison tracing,
# listed before the archive so that its members are not used: the hooks were a
# quarter of the target's time, and what they compare is mostly token kinds,
# positions and parsed numbers, which libFuzzer cannot map back to input bytes
# (keywords are compared by memcmp/strcmp, still hooked through the sanitizers'
# interceptors). The language's words are in tests/fuzz/fuzz_policy.dict, which
# `make fuzz` and long.sh pass to the target. Coverage, ASan and UBSan are as everywhere;
# fuzz_policy_fmt, fuzz_cases and fuzz_regex keep the traced objects. See
# tests/fuzz/RESULTS.md, "fuzz_policy's speed".
FUZZ_POLICY_NOCMP := $(patsubst %,build-fuzz/obj-nocmp/engine/%.o,eng_lex eng_parse eng_diags \
                     eng_compile eng_regex)
$(FUZZ_POLICY_NOCMP): build-fuzz/obj-nocmp/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -fno-sanitize-coverage=trace-cmp -c $< -o $@

build-fuzz/fuzz_policy: build-fuzz/obj/tests/fuzz/fuzz_policy.o $(FUZZ_POLICY_NOCMP) build-fuzz/libfuzz.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS) -lm -pthread

# Replays each fuzz target over its committed seed corpus plus a short random run:
# proves the targets build and that no known input crashes. One rule per target,
# so that `make test` runs JOBS of them at once (each is one process, and
# fuzz_policy alone takes about 9 s). New inputs go to build-fuzz/smoke/, never
# to the committed corpus.
FUZZ_SMOKE := $(FUZZ_SRC:tests/fuzz/%.c=_fuzz-smoke/%)
_fuzz-smoke: $(FUZZ_SMOKE)
$(FUZZ_SMOKE): _fuzz-smoke/%: build-fuzz/%
	@rm -rf build-fuzz/smoke/$*; mkdir -p build-fuzz/smoke/$*
	@$< -runs=3000 -max_len=8192 -seed=1 build-fuzz/smoke/$* tests/fuzz/corpus/$* \
	    >build-fuzz/$*.log 2>&1 || { cat build-fuzz/$*.log; echo "fuzz smoke: $* FAILED"; exit 1; }
	@echo "fuzz smoke: $* ok"
.PHONY: $(FUZZ_SMOKE)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

# The lints CI runs after the tests: C formatting and shellcheck over every
# shell script (about 20 s of CPU, so not inside make test).
lint: deps
	@$(MAKE) --no-print-directory format-check
	@bash tests/shell_lint.sh

clean:
	rm -rf build build-asan build-fuzz build-bench build-deb

.SECONDARY:

-include $(shell find $(BUILD)/obj $(BUILD)/pic build-fuzz/obj build-fuzz/obj-nocmp -name '*.d' 2>/dev/null)
