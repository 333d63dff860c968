# `make demo` (the main job) and `make test` each set up .venv first (tools/setup_env.sh, a no-op
# when it is up to date). CDCL_WHEELS=DIR lets pip take prebuilt wheels (mmcv) from DIR.
PY := .venv/bin/python

.PHONY: env demo test test-fast
env:
	bash tools/setup_env.sh

demo: env
	$(PY) tools/run_demo.py

test: env
	$(PY) -m pytest -q

# The fast tier for everyday work: every package module at unit level, no test marked slow.
test-fast: env
	$(PY) -m pytest -q -m "not slow"
