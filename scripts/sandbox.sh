#!/usr/bin/env bash
# The run command (`make run`): builds and installs, then runs the sandbox in the
# foreground until Ctrl-C / SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec /usr/bin/python3 scripts/sandbox.py "$@"
