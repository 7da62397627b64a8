# The two commands: `make run` brings the system up, `make test` runs every check.
# Build outputs go to a cache folder outside the clone, so fresh clones on one
# machine share them; `make clean` removes them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/ramp/target

.PHONY: run test install build lint fmt clean

run:
	@scripts/run.sh

test:
	@scripts/test.sh

install:
	@scripts/install.sh

build:
	cargo build --locked

lint:
	tools/node_modules/.bin/buf lint
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

fmt:
	cargo fmt --all

clean:
	cargo clean
