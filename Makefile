# Two commands for a fresh machine: `make app` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HOLIDAYS_DIR ?= $(CURDIR)/data/holidays

.PHONY: app test install index lint clean

install: $(STAMP)

# Reinstall only when a requirements file changes: a second `make` costs nothing.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# The default index (hsv, cosine, exact); rebuilt only when missing or of an older format.
index: $(STAMP)
	@grep -qs '"format": 2,' indexes/hsv-cosine-exact/manifest.json || $(PY) -m search_lab.build_index || true

app: $(STAMP)
	@$(MAKE) --no-print-directory index
	$(VENV)/bin/streamlit run app.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

clean:
	rm -rf outputs .cache indexes
