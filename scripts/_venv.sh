# Sourced by scripts/report, scripts/compare and scripts/webbench: make scripts/.venv with the
# pinned requirements on first use (or when requirements.txt changed), then
# expose its python as $PY. Says precisely what is missing if it cannot.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv="$here/.venv"
stamp="$venv/.requirements"
if ! command -v python3 >/dev/null 2>&1; then
    echo "fatal: python3 is missing (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
    echo "setting up $venv (first use): pip install -r scripts/requirements.txt" >&2
    python3 -m venv "$venv" || { echo "fatal: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
    "$venv/bin/pip" install -q -r "$here/requirements.txt" || { echo "fatal: pip could not install scripts/requirements.txt" >&2; exit 1; }
    cp "$here/requirements.txt" "$stamp"
fi
PY="$venv/bin/python"
