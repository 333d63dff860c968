#!/usr/bin/env bash
# Creates .venv in the repository root with exactly the locked environment
# (requirements/lock.txt, generated from the pins of requirements/pinned.txt and tests.txt) and
# mmseg-cdcl in editable mode. Idempotent: it does nothing when .venv already matches the
# requirement files and its installed versions equal the lock.
#
#   bash tools/setup_env.sh                 set up (or repair) .venv from the lock
#   bash tools/setup_env.sh --update-lock   resolve the pins afresh in a scratch environment and
#                                           rewrite requirements/lock*.txt from it (`make lock`)
#
#   CDCL_WHEELS=DIR   a folder of prebuilt wheels (e.g. mmcv 2.1.0 built for torch 2.13.0) that
#                     pip looks in besides its usual places; without it mmcv is built from source.
#   PYTHON=python3.11 the interpreter the environment is made from.
set -euo pipefail
cd "$(dirname "$0")/.."

update_lock=0
case "${1:-}" in
    '') ;;
    --update-lock) update_lock=1 ;;
    *) echo "setup_env: unknown argument '$1' (expected nothing or --update-lock)" >&2; exit 2 ;;
esac

lock=requirements/lock.txt
build_lock=requirements/lock-build.txt  # setuptools and wheel that build mmcv
if [ "$update_lock" = 1 ]; then
    venv=.venv-lock
    rm -rf "$venv"
    constraints=()
else
    venv=.venv
    for f in "$lock" "$build_lock"; do
        [ -f "$f" ] || { echo "setup_env: $f is missing: run 'make lock'" >&2; exit 2; }
    done
    constraints=(-c "$lock")
    stamp=$venv/.cdcl-env
    want=$(cat requirements/*.txt setup.py pyproject.toml tools/setup_env.sh | sha256sum | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
        "$venv/bin/python" tools/env_lock.py check >/dev/null 2>&1; then
        echo "setup_env: $venv is up to date"
        exit 0
    fi
fi

if [ -n "${CDCL_WHEELS:-}" ]; then
    [ -d "$CDCL_WHEELS" ] || { echo "setup_env: CDCL_WHEELS=$CDCL_WHEELS is not a folder" >&2; exit 2; }
    # Appended, not replacing: the machine's own PIP_FIND_LINKS may be where torch's CPU build is.
    export PIP_FIND_LINKS="${PIP_FIND_LINKS:+$PIP_FIND_LINKS }$(cd "$CDCL_WHEELS" && pwd)"
fi

[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --disable-pip-version-check)

# mmcv 2.1.0 has no wheel for torch 2.13: pip builds it against the torch already in the
# environment (so torch first, no build isolation) with setuptools<70, which its setup.py needs.
# torch itself requires setuptools>=77, which the next step puts back.
"${pip[@]}" "${constraints[@]}" "$(grep '^torch==' requirements/pinned.txt)"
if [ "$update_lock" = 1 ]; then
    "${pip[@]}" "setuptools<70" wheel
    "$venv/bin/python" -m pip freeze --all | grep -iE '^(setuptools|wheel)==' > "$build_lock"
else
    "${pip[@]}" -r "$build_lock"
fi
"${pip[@]}" "${constraints[@]}" --no-build-isolation "$(grep '^mmcv==' requirements/pinned.txt)"
"${pip[@]}" "${constraints[@]}" -r requirements/pinned.txt -r requirements/tests.txt
"${pip[@]}" "${constraints[@]}" --no-build-isolation -e .

if [ "$update_lock" = 1 ]; then
    "$venv/bin/python" tools/env_lock.py write --lock "$lock"
    rm -rf "$venv"
    echo "setup_env: $lock and $build_lock rewritten; 'make test' now sets up .venv from them"
    exit 0
fi
# Anything left from an earlier environment that the lock does not hold is an error to fix by
# hand (rm -rf .venv), not something to uninstall silently.
"$venv/bin/python" tools/env_lock.py check
"$venv/bin/python" -c "import mmcv.ops, mmseg_cdcl; print('setup_env: mmcv', mmcv.__version__, '| mmseg_cdcl', mmseg_cdcl.__version__)"
echo "$want" > "$stamp"
