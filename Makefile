# The README's two commands are `make run` and `make test`; both build .venv when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements/dev.lock

.PHONY: run test bench docs install lock check-deploy clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "promptlab needs Python 3.11; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)

# Reinstalls whenever the lock changes; pip refuses any file whose hash is not in the lock.
$(VENV)/.installed-$(notdir $(LOCK)): $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(LOCK)
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(VENV)/.installed-$(notdir $(LOCK))

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py load_demo
	$(BIN)/python manage.py run_dev

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/run.py

# The documentation site (docs/, mkdocs.yml) with live reload; make test builds it strictly.
docs: install
	$(BIN)/mkdocs serve -a 127.0.0.1:8001

# Re-resolve both locks after editing pyproject.toml's dependencies.
lock: install
	$(BIN)/uv pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 -o requirements/base.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --generate-hashes --python-version 3.11 -o requirements/dev.lock

clean:
	rm -rf $(VENV) var staticfiles
