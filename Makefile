# `make demo` (the main job) and `make test` each set up .venv first (tools/setup_env.sh: exactly
# the versions of requirements/lock.txt; a no-op when .venv matches it). CDCL_WHEELS=DIR lets pip
# take prebuilt wheels (mmcv) from DIR. `make lock` re-resolves the pins into the lock.
PY := .venv/bin/python

.PHONY: env lock demo demo-more test test-fast
env:
	bash tools/setup_env.sh

lock:
	bash tools/setup_env.sh --update-lock

demo: env
	$(PY) tools/run_demo.py

# The demo's other stages too: images of unknown source, a branch for a new camera from its
# unlabelled images, BN statistics.
demo-more: env
	$(PY) tools/run_demo.py --more

# Two pytest-xdist workers for the two cores (the fixtures that make a costly folder make it once
# for both: tests/conftest.py's shared_folder); --dist loadgroup takes tests/conftest.py's
# scheduler: the modules that share a costly fixture on one worker, the longest first.
XDIST := -n 2 --dist loadgroup

test: env
	$(PY) -m pytest -q $(XDIST)

# The fast tier for everyday work: every package module at unit level, no test marked slow.
test-fast: env
	$(PY) -m pytest -q $(XDIST) -m "not slow"
