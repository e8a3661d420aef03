# Two commands on a fresh machine: `make demo` and `make test`. Both create/reuse .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint runtime browser venv sweagent

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

runtime:
	bash tools/ensure_runtime.sh

browser:
	bash tools/ensure_browser.sh

demo: venv runtime
	$(PY) -m harness images fixtures
	$(PY) -m pytest evals -m demo -n 2

test: venv runtime browser
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Optional second backend: SWE-agent 1.1.0 from its git tag (not on PyPI). Editable, because SWE-agent
# needs its config/ and tools/ folders next to the package, which a plain install from the tag lacks.
sweagent: venv
	$(PY) -m pip install -q -e 'git+https://github.com/SWE-agent/SWE-agent.git@v1.1.0#egg=sweagent'
