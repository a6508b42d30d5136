# Sol: build, run and test. Quick start: `make run` (broker on 127.0.0.1:1883), `make test` (everything).
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
PYTHON     ?= /usr/bin/python3
JOBS       ?= 2

.PHONY: deps build run test unit integration cluster-test deploy-test asan fuzz bench cluster format format-check clean

deps:
	@./deploy/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

# Start one broker in the foreground on 127.0.0.1:1883.
run: build
	$(BUILD)/sol --bind 127.0.0.1 --port 1883

# Every test: unit, integration, cluster, deploy, then the sanitizer run and the fuzzer.
test: build
	@PYTHON=$(PYTHON) BUILD=$(BUILD) ASAN_BUILD=$(ASAN_BUILD) FUZZ_BUILD=$(FUZZ_BUILD) ./tests/run_all.sh

unit: build
	@cd $(BUILD) && ctest --output-on-failure

integration: build
	@SOL_BIN=$(BUILD)/sol $(PYTHON) -m pytest -q tests/integration

cluster-test: build
	@SOL_BIN=$(BUILD)/sol $(PYTHON) -m pytest -q tests/cluster

deploy-test: build
	@SOL_BIN=$(BUILD)/sol $(PYTHON) -m pytest -q tests/deploy

asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSOL_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DSOL_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS)

bench: build
	@./bench/compare.sh

# A three-node cluster of plain local processes (127.0.0.1-3), in the foreground; Ctrl-C stops all.
cluster: build
	@./deploy/local-cluster.sh $(BUILD)/sol

format:
	@clang-format -i app/*.[ch] node/*.[ch] cluster/*.[ch] ops/*.[ch] bench/*.[ch] tests/unit/*.[ch] tests/fuzz/*.c

format-check:
	@./tests/check_format.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
