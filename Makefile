# Thin wrapper over the scripts; the scripts are the source of truth (README).
.PHONY: run test bench fuzz gpu clean
run:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
bench:
	bash scripts/bootstrap.sh && . scripts/env.sh && mimo_setup build && build/tests/bench/bench_mxfp4
# libFuzzer over the safetensors reader for FUZZ_SECONDS (default 60), seeded from the corpus.
FUZZ_SECONDS ?= 60
fuzz:
	bash scripts/fuzz.sh $(FUZZ_SECONDS)
gpu:
	bash scripts/gpu-host.sh
clean:
	rm -rf build build-san build-gpu build-fuzz out build*.log
