# The two commands: `make run` brings the system up, `make test` runs every check.
# Build outputs go to a cache folder outside the clone, so fresh clones on one
# machine share them; `make clean` removes them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/ramp/target

.PHONY: run test bench bench-compare soak install build release lint fmt clean

run:
	@scripts/run.sh

test:
	@scripts/test.sh

# The benchmarks of BENCHMARKS.md on a stack of their own (rewrites its results).
bench:
	@scripts/bench.sh

# Every scenario again, without touching BENCHMARKS.md; then each key figure next to
# the last report's, with its ratio (a slower change is seen before it lands).
bench-compare:
	@scripts/bench.sh --compare

# 10 minutes of mixed load: errors and the server's memory over time.
soak:
	@scripts/bench.sh soak

install:
	@scripts/install.sh

build:
	cargo build --locked

# The static release binary and the images ramp, ramp-engine and ramp-postgres,
# tagged with the version in Cargo.toml (scripts/images.sh).
release:
	@scripts/images.sh

lint:
	tools/node_modules/.bin/buf lint
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

clean:
	cargo clean
