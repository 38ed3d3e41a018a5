# Sourced by the scripts here: makes .venv with $PYTHON (python3 by default) if it is missing,
# and installs Fennel into it with the extras given as the first argument.
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet -e ".[$1]"
