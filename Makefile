# Touchstone — the two commands a newcomer needs are `make demo` and `make test`.
# Every target bootstraps what it needs: the virtualenv, Python packages (pinned in
# constraints.txt), the Kafka jars (Maven) and, for the collector tests, Xvfb/xdotool.

VENV      ?= .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
PYTEST_ARGS ?=
DEMO_ARGS ?=
BENCH_ARGS ?=

.PHONY: help venv jars xvfb test test-fast lint demo bench kafka-up kafka-down kafka-status evaluate clean

help:
	@echo "make demo        Kafka + workers + sinks + a simulated fleet with an impostor, live view, summary"
	@echo "make test        the whole test suite (starts its own Kafka broker)"
	@echo "make bench       benchmarks on the real broker, JSON report in bench/out/"
	@echo "make lint        ruff"
	@echo "make kafka-up    start the local KRaft broker (make kafka-down stops it)"
	@echo "make evaluate    dataset evaluation (needs ../shared/datasets; unpacks into .data/)"

$(STAMP): pyproject.toml constraints.txt scripts/bootstrap-venv.sh
	@scripts/bootstrap-venv.sh $(VENV)
	@touch $@

venv: $(STAMP)

jars: $(STAMP)
	@$(PY) -m touchstone.cli kafka resolve

xvfb:
	@deploy/xvfb/ensure-xvfb.sh

lint: $(STAMP)
	@$(VENV)/bin/ruff check .

# pytest exits 5 when it collected nothing: a broken suite, reported as such.
test: $(STAMP) jars xvfb lint
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# Unit tests only: no broker, no X server.
test-fast: $(STAMP)
	@$(PY) -m pytest -m "not kafka and not xvfb" $(PYTEST_ARGS)

demo: $(STAMP) jars
	@$(PY) -m touchstone.cli demo $(DEMO_ARGS)

bench: $(STAMP) jars
	@mkdir -p bench/out
	@$(PY) -m touchstone.cli bench --json bench/out/bench.json $(BENCH_ARGS)

kafka-up: $(STAMP) jars
	@$(PY) -m touchstone.cli kafka up

kafka-down: $(STAMP)
	@$(PY) -m touchstone.cli kafka down

kafka-status: $(STAMP)
	@$(PY) -m touchstone.cli kafka status

.data/balabit .data/aalto:
	@../shared/datasets/unpack .data

evaluate: $(STAMP) .data/balabit .data/aalto
	@mkdir -p bench/out
	@$(PY) -m touchstone.cli evaluate balabit --data .data/balabit --labels .data/balabit/public_labels_dev.csv --json bench/out/balabit.json
	@$(PY) -m touchstone.cli evaluate aalto --data .data/aalto/keystrokes --privacy keyed --json bench/out/aalto-keyed.json
	@$(PY) -m touchstone.cli evaluate aalto --data .data/aalto/keystrokes --privacy timing --json bench/out/aalto-timing.json

clean:
	rm -rf .run build *.egg-info .pytest_cache .ruff_cache
