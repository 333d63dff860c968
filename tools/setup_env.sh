#!/usr/bin/env bash
# Creates .venv in the repository root with the pinned OpenMMLab stack (requirements/pinned.txt)
# and mmseg-cdcl in editable mode. Idempotent: it does nothing when .venv already matches the
# requirement files.
#
#   CDCL_WHEELS=DIR   a folder of prebuilt wheels (e.g. mmcv 2.1.0 built for torch 2.13.0) that
#                     pip looks in besides its usual places; without it mmcv is built from source.
#   PYTHON=python3.11 the interpreter the environment is made from.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
stamp=$venv/.cdcl-env
want=$(cat requirements/*.txt setup.py | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "setup_env: $venv is up to date"
    exit 0
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
"${pip[@]}" "$(grep '^torch==' requirements/pinned.txt)"
"${pip[@]}" "setuptools<70" wheel
"${pip[@]}" --no-build-isolation "$(grep '^mmcv==' requirements/pinned.txt)"
"${pip[@]}" -r requirements/pinned.txt -r requirements/tests.txt
"${pip[@]}" --no-build-isolation -e .

"$venv/bin/python" -c "import mmcv.ops, mmseg_cdcl; print('setup_env: mmcv', mmcv.__version__, '| mmseg_cdcl', mmseg_cdcl.__version__)"
echo "$want" > "$stamp"
