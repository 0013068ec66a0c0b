#!/usr/bin/env bash
# Run berth's whole test suite, installing what it needs first.
#
# Installs the real registry clients the end-to-end tests drive (skopeo,
# podman, buildah, docker engine, oras-py) with apt and pip when run as root
# (or with sudo), then runs unit, integration, conformance, invariant and
# end-to-end tests. Set BERTH_SKIP_INSTALL=1 to skip the install step.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${BERTH_SKIP_INSTALL:-0}" != 1 ]; then
    if [ "$(id -u)" = 0 ]; then
        bash .ci/install-deps.sh
    else
        sudo bash .ci/install-deps.sh
    fi
fi

# Every end-to-end client must be present: a missing one fails, not skips.
export BERTH_E2E_REQUIRED="${BERTH_E2E_REQUIRED:-1}"
# Integration tests mostly wait on I/O and child processes.
cargo test --locked --all-targets -- --test-threads "${BERTH_TEST_THREADS:-4}"
