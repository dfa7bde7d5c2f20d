# Sourced by the scripts: make the scripts' venv and install the pinned
# requirement sets named in $VENV_NEEDS (plots, web, test) that it does not
# hold yet, saying what it installs; then expose its python as $PY. Says
# precisely what is missing if it cannot. Nothing happens for a set already
# installed at the pinned versions. The venv is $SOCKBENCH_VENV if set, else
# scripts/.venv, or, where the checkout cannot be written (read-only),
# ${XDG_CACHE_HOME:-~/.cache}/sockbench/venv.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -n "${SOCKBENCH_VENV:-}" ]; then
    venv=$SOCKBENCH_VENV
elif [ -x "$here/.venv/bin/python" ] || [ -w "$here" ]; then
    venv="$here/.venv"
else
    venv="${XDG_CACHE_HOME:-$HOME/.cache}/sockbench/venv"
    mkdir -p "$(dirname "$venv")" || { echo "fatal: $here is read-only and $(dirname "$venv") cannot be made; set SOCKBENCH_VENV to a writable place" >&2; exit 1; }
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "fatal: python3 is missing (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "making $venv (the scripts' own Python environment)" >&2
    python3 -m venv "$venv" || { echo "fatal: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
fi
for need in ${VENV_NEEDS:-plots}; do
    req="$here/requirements-$need.txt"
    stamp="$venv/.installed-$need"
    if ! cmp -s "$req" "$stamp"; then
        what=$(grep -v '^#' "$req" | tr '\n' ' ')
        echo "installing into $venv for $need: $what(first use; about 30 s)" >&2
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" \
            || { echo "fatal: pip could not install scripts/requirements-$need.txt" >&2; exit 1; }
        cp "$req" "$stamp"
    fi
done
PY="$venv/bin/python"
