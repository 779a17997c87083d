# make test      - install into ./.venv (first time) and run the test suite
# make tutorial  - run Pachyderm's beginner tutorial end to end on the embedded pachd
# make bench     - run the benchmarks (bench/)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install test test-fast tutorial bench proto

install:
	@bash scripts/bootstrap.sh

test: install
	$(PY) -m pytest -q -n 2 -W error::ResourceWarning

test-fast: install
	$(PY) -m pytest -q -n 2 -m "not slow"

tutorial: install
	$(PY) examples/beginner_tutorial/run.py

bench: install
	$(PY) -m bench --quick

proto: install
	$(PY) -m proto.generate
