#!/usr/bin/env bash
# Creates the virtualenv and installs Touchstone with the pinned working set.
# Needs Python >= 3.11; picks the first suitable interpreter on PATH.
set -euo pipefail
venv=${1:-.venv}
pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [[ -n $candidate ]] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}
python=$(pick_python) || { echo "bootstrap: Python >= 3.11 not found (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
if [[ ! -x $venv/bin/python ]]; then
  echo "bootstrap: creating $venv with $($python --version)"
  "$python" -m venv "$venv"
fi
echo "bootstrap: installing pinned packages (constraints.txt)"
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
"$venv/bin/python" -m pip install -q -c constraints.txt -e ".[dev,rocksdb]"
echo "bootstrap: ok"
