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
# one torch/BLAS thread per test process: quick-mode steps take milliseconds, where a second thread gains
# nothing, and two threads on a busy machine stall each other (the autodecoder chapter: 32 s on one thread
# beside two other jobs, 243 s on two)
TEST_THREADS ?= 1
TEST_OUT := _build/test

.PHONY: book test bench clean sync mathjax

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet "$(TORCH)" -e ".[dev]"
	touch $(STAMP)

book: $(STAMP) mathjax
	OMP_NUM_THREADS=$(TEST_THREADS) $(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "Book: file://$(CURDIR)/_build/html/index.html"

test: $(STAMP) mathjax
	rm -rf $(TEST_OUT)
	OMP_NUM_THREADS=$(TEST_THREADS) MADNG_QUICK=$(MADNG_QUICK) $(VENV)/bin/jupyter-book build . --path-output $(TEST_OUT) -W -n --keep-going
	OMP_NUM_THREADS=$(TEST_THREADS) MADNG_QUICK=$(MADNG_QUICK) MADNG_BOOK_HTML=$(TEST_OUT)/_build/html $(PY) -m pytest tests book --nbval-lax -p no:cacheprovider

# MathJax 3 served by the book itself (_mathjax/mathjax-local.js loads it), so math renders offline;
# fetched once from the npm registry (2 MB of its 24 MB kept). Without npm the pages use the CDN.
MATHJAX ?= mathjax@3.2.2
MJX     := _mathjax/mathjax3
mathjax:
	@test -f $(MJX)/tex-mml-chtml.js || { \
	  tmp=$$(mktemp -d); \
	  if command -v npm >/dev/null && (cd $$tmp && npm pack --silent $(MATHJAX) >/dev/null && tar xzf mathjax-*.tgz); then \
	    mkdir -p $(MJX)/input/tex $(MJX)/output/chtml/fonts && \
	    cp -r $$tmp/package/es5/input/tex/extensions $(MJX)/input/tex/ && \
	    cp -r $$tmp/package/es5/output/chtml/fonts/woff-v2 $(MJX)/output/chtml/fonts/ && \
	    cp $$tmp/package/es5/tex-mml-chtml.js $(MJX)/ && \
	    echo "MathJax ($(MATHJAX)) in $(MJX)/"; \
	  else echo "warning: could not fetch $(MATHJAX) with npm; the pages will load MathJax from the CDN"; fi; \
	  rm -rf $$tmp; }

bench: $(STAMP)
	$(PY) benchmarks/ng_bench.py

sync:
	$(VENV)/bin/jupytext --sync book/*.md

clean:
	rm -rf _build
