# The course's commands. The first two are all a newcomer needs:
#   make book   build the book (executes every chapter) into _build/html
#   make test   run the whole test suite
# Both create .venv on first use and install the pinned stack into it.

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# nbgrader runs alembic (and jupyter) from PATH: make it the venv's.
export PATH := $(BIN):$(PATH)
# Keep the course's tests and books off a GPU unless asked: CI has none.
export MPLBACKEND := Agg

.PHONY: book test lint checkpoints screenshots bench release grade due extension markscheme demo-class clean venv constraints

venv: $(VENV)/.installed

# constraints.txt pins the whole tested stack (torch is the CPU wheel this course is tested with)
$(VENV)/.installed: pyproject.toml constraints.txt binder/lab-overrides.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	# JupyterLab in .venv opens the book's pages (MyST .md) as notebooks (jupytext's viewer)
	mkdir -p $(VENV)/etc/jupyter/labconfig
	cp binder/lab-overrides.json $(VENV)/etc/jupyter/labconfig/default_setting_overrides.json
	touch $@

# after changing pyproject.toml's dependencies or upgrading a package in .venv:
# pin what .venv now holds (the tested stack) into constraints.txt
constraints: venv
	{ echo '# The tested stack, pinned: the Makefile installs .venv with pip install -c constraints.txt.'; \
	  echo '# Generated from .venv by `make constraints` (pip freeze --exclude-editable, less seqlab);'; \
	  echo '# regenerate it that way after changing pyproject.toml or upgrading a package in .venv.'; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -i '^seqlab[ =@]'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	touch $(VENV)/.installed

book: venv
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going
	touch _build/html/.nojekyll

test: lint
	$(BIN)/python -m pytest

# what CI checks before the tests: ruff, and the package's layers (its import graph)
lint: venv
	$(BIN)/ruff check seqlab tests book/_ext bench
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/base/test_layers.py

# retrain the models the book ships, into seqlab/checkpoints (a few minutes to an hour on a CPU)
# make checkpoints [CHAPTER=id] [ONLY=name]; `python -m seqlab.chapters stale` lists outdated ones
checkpoints: venv
	$(BIN)/python -m seqlab.chapters checkpoints $(CHAPTER) $(if $(ONLY),--only $(ONLY))

# the course measured end to end: bench/results.md, bench/results.json, README's table
bench: venv
	$(BIN)/python bench/run.py

# every page of the built book at desktop and phone width, in _build/screenshots
# (headless chromium: apt-get install chromium)
screenshots: book
	$(BIN)/python tests/book/browser.py _build/html _build/screenshots

release: venv
	$(BIN)/python -m seqlab.kit release

# make grade [ZIP=downloads.zip ASSIGNMENT=id] [JOBS=n] [REGRADE=1] [NO_SANDBOX=1: trusted code only]
#            [CLUSTER=<Dask scheduler address, or local:N>]  (a PostgreSQL gradebook:
#            SEQLAB_GRADEBOOK_URL=postgresql://...; see book/instructors.md)
grade: venv
	$(BIN)/python -m seqlab.kit grade $(if $(ZIP),--zip $(ZIP)) \
		$(if $(ASSIGNMENT),--assignment $(ASSIGNMENT)) $(if $(JOBS),--jobs $(JOBS)) \
		$(if $(REGRADE),--regrade) $(if $(CLUSTER),--cluster $(CLUSTER)) \
		$(if $(NO_SANDBOX),--no-sandbox)

# an assignment's due date, and one student's extension (nbgrader's gradebook; the grade
# table shows it): make due ASSIGNMENT=id WHEN='2027-01-15 17:00 UTC'
#                  make extension ASSIGNMENT=id STUDENT=1001 UNTIL='2027-01-20 17:00 UTC'
due: venv
	$(BIN)/python -m seqlab.kit due --assignment "$(ASSIGNMENT)" --when "$(WHEN)"

extension: venv
	$(BIN)/python -m seqlab.kit extension --assignment "$(ASSIGNMENT)" --student "$(STUDENT)" \
		--until "$(UNTIL)"

# the mark scheme and model answer of every answer graded by hand, to read beside the
# formgrader (which shows only the student's answer): make markscheme [ASSIGNMENT=id]
markscheme: venv
	$(BIN)/python -m seqlab.kit markscheme $(if $(ASSIGNMENT),--assignment $(ASSIGNMENT))

# a synthetic class (correct, blank, partly wrong, hostile) graded and checked
# make demo-class [ASSIGNMENT=id]
demo-class: venv
	rm -rf demo-class
	$(BIN)/python -m seqlab.kit demo-class --dir demo-class \
		$(if $(ASSIGNMENT),--assignment $(ASSIGNMENT))

clean:
	rm -rf _build .pytest_cache
