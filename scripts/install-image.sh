#!/bin/sh
# Install zoo-ops and its `zoo-ops` Jupyter kernel into the Python environment of $PYTHON
# (default: python3), from the checkout this script is in. The Dockerfile runs it with
# PIP_OPTIONS="--no-index --find-links /wheels" so that the image builds with no network;
# a pod started from the image installs nothing.
set -eu
PYTHON=${PYTHON:-python3}
cd "$(dirname "$0")/.."
# shellcheck disable=SC2086 # PIP_OPTIONS is a list of options
"$PYTHON" -m pip install --no-cache-dir ${PIP_OPTIONS:-} .
"$PYTHON" -c "from zoo_ops.kernel import ensure_kernel; print('kernel:', ensure_kernel())"
"$PYTHON" -m zoo_ops.cli --version
