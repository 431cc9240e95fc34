# Convenience front door. Everything real lives in CMake; this file only
# installs missing Debian packages, configures the build and runs jobs.
#   make demo   install deps, build, run sbpc's main job on a bundled example
#   make test   install deps, build, run the whole suite (plain + ASan/UBSan + TSan executor tests + fuzz smoke)
#   make bench  run the benchmarks in bench/
JOBS ?= 2
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
TSAN_BUILD ?= build-tsan
CMAKE_FLAGS ?=

.PHONY: all deps deps-test build demo test test-plain test-asan test-tsan test-fuzz bench clean install

all: build

deps:
	@bash scripts/deps.sh

# what only the tests need (python3-torch for the PyTorch reference tests)
deps-test:
	@bash scripts/deps.sh test

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DSBPC_WERROR=ON $(CMAKE_FLAGS) >/dev/null

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD)/sbpc

test: deps-test test-plain test-asan test-tsan test-fuzz

test-plain: build
	cd $(BUILD) && ctest -j$(JOBS) --output-on-failure

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DSBPC_WERROR=ON -DSBPC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest -j$(JOBS) --output-on-failure -LE noasan

# ThreadSanitizer over the tests labelled "executor" (they run the actor
# executor's worker threads through `sbpc`, the only binary they need);
# tests/tsan.supp silences OpenMPI's own internals, and races reported
# inside the uninstrumented OpenBLAS (see the comment there). SBPC_WORKERS=2
# keeps two actor workers per rank (the default is 1 on 2 cores).
test-tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DSBPC_WERROR=ON -DSBPC_TSAN=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build $(TSAN_BUILD) -j$(JOBS) --target sbpc
	cd $(TSAN_BUILD) && SBPC_WORKERS=2 TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1 second_deadlock_stack=1" \
	  ctest -j$(JOBS) --output-on-failure -L executor

test-fuzz: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DSBPC_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzz_all
	bash scripts/fuzz.sh $(FUZZ_BUILD) $${FUZZ_SECONDS:-20}

bench: build
	cmake --build $(BUILD) -j$(JOBS) --target bench_all
	bash bench/run.sh $(BUILD)

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
