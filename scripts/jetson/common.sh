# shellcheck shell=bash
# Shared by setup.sh, build.sh and bench.sh (sourced, not run).

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
HELPER="$HERE/yolo_optim_jetson.py"

die() {
    echo "error: $*" >&2
    exit 2
}

# Root runs nvpmodel and jetson_clocks directly; anyone else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

find_trtexec() {
    if [ -n "${TRTEXEC:-}" ]; then
        echo "$TRTEXEC"
    elif command -v trtexec >/dev/null 2>&1; then
        command -v trtexec
    elif [ -x /usr/src/tensorrt/bin/trtexec ]; then
        echo /usr/src/tensorrt/bin/trtexec
    else
        die "trtexec not found: install TensorRT (JetPack ships it in /usr/src/tensorrt/bin) or set TRTEXEC="
    fi
}

# TensorRT version as MAJOR.MINOR.PATCH, from trtexec's banner ("[TensorRT v100300]"), else the Python module,
# else the Debian package; TRT_VERSION= overrides.
trt_version() {
    if [ -n "${TRT_VERSION:-}" ]; then
        echo "$TRT_VERSION"
        return
    fi
    local code
    code="$("$(find_trtexec)" --help 2>&1 | sed -n 's/.*\[TensorRT v\([0-9][0-9]*\)\].*/\1/p' | head -n 1 || true)"
    if [ -n "$code" ]; then
        echo "$((code / 10000)).$((code / 100 % 100)).$((code % 100))"
        return
    fi
    local v
    v="$("$PY" -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null || true)"
    if [ -z "$v" ]; then
        v="$(dpkg-query -W -f='${Version}' libnvinfer-bin 2>/dev/null | cut -d- -f1 || true)"
    fi
    [ -n "$v" ] || die "cannot tell the TensorRT version (no trtexec banner, no tensorrt module, no libnvinfer-bin)"
    echo "$v"
}

# Exits with a clear message unless TensorRT is 10.3+ (JetPack 6) or 11.x (JetPack 7).
check_trt_supported() {
    local major minor
    major="${1%%.*}"
    minor="$(echo "$1" | cut -d. -f2)"
    if [ "$major" -eq 10 ] && [ "$minor" -ge 3 ]; then return 0; fi
    if [ "$major" -eq 11 ]; then return 0; fi
    die "TensorRT $1 is not supported: these scripts need TensorRT 10.3 or newer 10.x (JetPack 6) or 11.x (JetPack 7)"
}

meta_get() {
    "$PY" "$HELPER" meta-get "$1" --bundle "$BUNDLE"
}
