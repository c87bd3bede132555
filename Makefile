# madng-lite: two commands do all the set-up on a fresh machine (Python >= 3.10; 3.11 tested).
#   make book   build the executed book (full size)  -> _build/html/index.html
#   make test   unit tests, every notebook under nbval, and a -W build of the book, in quick mode
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# the CPU wheel of torch 2.13.0; an open range would pull a multi-GB CUDA build
TORCH  ?= torch==2.13.0
# quick mode for the tests unless the caller says otherwise (MADNG_QUICK=0 make test: full size)
MADNG_QUICK ?= 1
TEST_OUT := _build/test

.PHONY: book test bench clean sync

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet "$(TORCH)" -e ".[dev]"
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "Book: file://$(CURDIR)/_build/html/index.html"

test: $(STAMP)
	rm -rf $(TEST_OUT)
	MADNG_QUICK=$(MADNG_QUICK) $(VENV)/bin/jupyter-book build . --path-output $(TEST_OUT) -W -n --keep-going
	MADNG_QUICK=$(MADNG_QUICK) MADNG_BOOK_HTML=$(TEST_OUT)/_build/html $(PY) -m pytest tests book --nbval-lax -p no:cacheprovider

bench: $(STAMP)
	$(PY) benchmarks/ng_bench.py

sync:
	$(VENV)/bin/jupytext --sync book/*.md

clean:
	rm -rf _build
