#!/bin/sh
# Builds message.wasm (or $OUT), a component of the weir:rule world, from
# app.py with componentize-py (pip install componentize-py).
set -eu
cd "$(dirname "$0")"
"${COMPONENTIZE_PY:-componentize-py}" -d ../../../guest-sdk/wit -w rule componentize app -o "${OUT:-message.wasm}"
