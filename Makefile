# AutoBot: the two commands a newcomer needs are `make run` and `make test`.
# Everything else is a convenience around meson/ninja.
BUILD      ?= build
ASAN_BUILD ?= build-asan
STATE_DIR  ?= $(CURDIR)/var
CONFIG     ?=
RUN_ARGS   ?= $(if $(CONFIG),--config $(CONFIG)) --state-dir $(STATE_DIR)

.PHONY: all build run test unit asan valgrind fuzz bench format clean deps deps-build

all: build

deps-build:
	@bash scripts/install-deps.sh build

deps:
	@bash scripts/install-deps.sh test

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized

build: deps-build $(BUILD)/build.ninja
	ninja -C $(BUILD)

# Installs what is missing, builds, and runs redis + every role in the
# foreground. Ctrl-C stops everything.
run: build
	./$(BUILD)/autobot up $(RUN_ARGS)

# The whole suite: unit tests, fuzz-corpus replays, the same under
# ASan+UBSan, then the integration tests against real processes.
test: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)
	bash tests/run-all.sh $(BUILD) $(ASAN_BUILD)

unit: build
	meson test -C $(BUILD) --suite unit --suite fuzz --print-errorlogs

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug

asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  meson test -C $(ASAN_BUILD) --suite unit --suite fuzz --print-errorlogs

valgrind: build
	meson test -C $(BUILD) --suite unit --wrapper 'valgrind --error-exitcode=1 --leak-check=full --trace-children=no' --print-errorlogs

# libFuzzer targets (clang): ./build-fuzz/tests/fuzz_config tests/fuzz/corpus/config
fuzz:
	CC=clang meson setup build-fuzz -Dfuzzer=true -Db_sanitize=address,undefined -Db_lundef=false || true
	ninja -C build-fuzz

bench: build
	@bash scripts/install-deps.sh bench
	bash bench/run.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
