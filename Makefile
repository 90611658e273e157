# Two commands for a fresh machine (see README):
#   make run    set up .venv, then run the whole pipeline on the embedded default dataset
#   make test   set up .venv, run the default pipeline (reusing what `make run` computed),
#               then the unit tests, the tiny pipeline, and nbval on the committed report
PYTHON ?= python3
VENV := .venv
CORES ?= 2
PY := $(VENV)/bin/python

.PHONY: run test setup screenshot

setup: $(VENV)/.installed

# torch first and pinned: an unpinned torch pulled in by another package is a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

run: setup
	$(VENV)/bin/snakemake --cores $(CORES)

# --omit-from publish_report keeps the committed reports/ untouched, so nbval compares its
# stored outputs with a re-execution on the results computed here. --retries 1: a notebook kernel
# that misses papermill's 60 s start timeout on a loaded machine fails its job without running it.
test: setup
	$(VENV)/bin/snakemake --cores $(CORES) --retries 1 --omit-from publish_report
	$(VENV)/bin/pytest -q tests reports/index.ipynb $(wildcard reports/*/report.ipynb) --nbval --nbval-sanitize-with reports/sanitize.cfg --durations=20

# The front page as a reader first sees it (1280 x 800), for the README; needs Debian's chromium.
screenshot:
	tmp=$$(mktemp -d) && chromium --headless --no-sandbox --disable-gpu --user-data-dir=$$tmp --hide-scrollbars \
		--window-size=1280,800 --screenshot=reports/front_page.png file://$(CURDIR)/reports/index.html && rm -rf $$tmp
