# Two commands (see README): `make study` runs the main job, `make test` runs the tests.
# Both set up .venv first (once; again whenever requirements.txt changes).

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
KERNEL := xlt-robust-study
# Local torch wheels (this project's build machines have a CPU wheel there); harmless elsewhere.
WHEELS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels)

.PHONY: setup study test test-slow lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (or run: make PYTHON=python3 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	# torch first and alone: no later package may pull a different (CUDA) build.
	$(PY) -m pip install -q $(WHEELS) torch==2.13.0
	$(PY) -m pip install -q $(WHEELS) -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python ($(KERNEL))" >/dev/null
	# MathJax for the offline book, from the npm registry (checked against its sha512).
	$(PY) -c "from xltlib.report.book import ensure_mathjax; ensure_mathjax()"
	touch $@

study: setup  # the default study is offline: never wait on hub retries
	HF_HUB_OFFLINE=1 $(PY) -m xltlib study

test: setup lint
	$(PY) -m pytest -m "not slow"

lint: setup  # one formatter and linter (pyproject.toml); `ruff format .` fixes the layout
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

test-slow: setup  # pytest exits 5 when no test is marked slow: not a failure
	$(PY) -m pytest -m slow || [ $$? -eq 5 ]

clean:
	rm -rf runs runs-quick cache _build book/_build book/chapters _toc.yml book/reproducibility.md
