# cpgflow: `make demo` and `make test` set up a local virtualenv (.venv) when it is missing.
# It holds the `dev` tools, the `ui` extra (the Hamilton UI server and tracker: tests/test_ui.py runs them) and the
# `dask` extra (extraction on a Dask cluster: tests/test_dask.py starts one).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT := build/demo

.PHONY: setup system-deps demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ui,dask]'
	@touch $(STAMP)

setup: $(STAMP) system-deps

# graphviz's `dot` renders `cpgflow dag --png` (and its test); installed with apt-get when missing.
system-deps:
	@command -v dot >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -qq graphviz >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -qq >/dev/null && $$SUDO apt-get install -y -qq graphviz >/dev/null; }; }

# The CPG of this interpreter's standard library (its site-packages excluded).
demo: $(STAMP)
	$(VENV)/bin/cpgflow build "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')" \
		--out $(DEMO_OUT) --exclude site-packages
	$(VENV)/bin/cpgflow query $(DEMO_OUT) \
		"SELECT c.qualname, count(*) AS methods FROM cpg_nodes c JOIN cpg_edges e ON e.src = c.node_id \
		 JOIN cpg_nodes f ON f.node_id = e.dst WHERE c.kind = 'CLASS' AND f.kind = 'FUNCTION' \
		 GROUP BY c.qualname ORDER BY methods DESC, c.qualname LIMIT 5"

test: $(STAMP) system-deps
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) tests/benchmarks/bench_build.py

clean:
	rm -rf build .pytest_cache
