#!/usr/bin/env bash
# skew's two entry points on a fresh machine. Each creates .venv and installs the pinned
# environment (requirements.lock) when it is missing or out of date, then:
#   ./dev.sh figures [args]   regenerate figures/ (the main job, built-in defaults)
#   ./dev.sh test [args]      lint (ruff) and run the whole test suite (notebooks included)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

pip_install() {  # pip, minus the notes this machine's pip config prints for every package
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
        | { grep -v "^WARNING: Location .* is ignored" || true; }
    return "${PIPESTATUS[0]}"
}

ensure_venv() {
    local stamp=.venv/.installed-$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
    if [ ! -f "$stamp" ]; then
        [ -x .venv/bin/python ] || "$PY" -m venv .venv
        pip_install -r requirements.lock
        PYTHONWARNINGS=ignore pip_install --no-deps --no-build-isolation -e .
        rm -f .venv/.installed-*
        touch "$stamp"
    fi
}

cmd=${1:-help}
shift || true
case "$cmd" in
    test)
        ensure_venv
        .venv/bin/python -m ruff check skew tests benchmarks
        .venv/bin/python -m pytest -n 2 "$@"
        ;;
    figures)
        ensure_venv
        .venv/bin/skew figures --out figures "$@"
        ;;
    *)
        sed -n '2,6p' "$0"
        exit 2
        ;;
esac
