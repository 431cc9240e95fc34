#!/bin/sh
# make.sh TARGET... — the README's entry point. On a fresh Debian 12 machine
# (as root, or with sudo) it first installs what is missing — make, cmake, the
# compilers and the libraries sbpc needs (scripts/deps.sh; a no-op when all is
# there) — then runs `make TARGET...` (demo, test, bench, install).
set -e
cd "$(dirname "$0")"
bash scripts/deps.sh
exec make "$@"
