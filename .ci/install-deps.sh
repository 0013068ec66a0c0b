#!/usr/bin/env bash
# Install what berth's tests and benchmarks need, as root on Debian 12
# (bookworm) with the Rust toolchain already present. Idempotent and
# non-interactive: packages already installed are left alone, and nothing is
# fetched when everything is there.
#
# End-to-end clients (tests/it/e2e), as tested:
#   skopeo 1.9.3, podman 4.3.1, buildah 1.28.2  (containers/image 5.23)
#   docker.io 20.10.24 (dockerd + docker CLI; brings containerd 1.6.20 with
#   ctr, runc and tini)
#   umoci 0.4.7                 OCI layouts by hand
#   uidmap                      newuidmap/newgidmap for podman and buildah
#   golang-github-containers-common  policy.json, registries.conf
#   python3 + oras 0.2.43 (PyPI)     tests/e2e/oras_referrer.py
#   curl                        HTTP/2 and TLS checks (tests/it/tls.rs)
# Benchmarks: docker-registry 2.8.2 (CNCF distribution, run side by side).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a

ORAS_VERSION=0.2.43

packages=(
    skopeo
    podman
    buildah
    docker.io
    containerd
    runc
    umoci
    uidmap
    golang-github-containers-common
    docker-registry
    python3
    python3-pip
    ca-certificates
    curl
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# oras-py for the python3 the tests run (the first on PATH). Debian's own
# python3 is "externally managed" (PEP 668), so pip needs to be told.
if ! python3 -c "import oras.version, sys; sys.exit(oras.version.__version__ != '$ORAS_VERSION')" 2>/dev/null; then
    echo "install-deps: installing oras==$ORAS_VERSION for $(command -v python3)"
    if ! python3 -m pip --version >/dev/null 2>&1; then
        echo "install-deps: python3 on PATH has no pip; install it" >&2
        exit 1
    fi
    pip_flags=(--quiet --disable-pip-version-check --root-user-action=ignore)
    if python3 -c 'import sys, sysconfig, os; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
        pip_flags+=(--break-system-packages)
    fi
    python3 -m pip install "${pip_flags[@]}" "oras==$ORAS_VERSION"
fi

# The docker.io package may start a system dockerd; the tests never use it
# (each starts its own private daemon), so it is left as it is.
echo "install-deps: ok"
for t in skopeo podman buildah dockerd docker containerd ctr umoci docker-registry; do
    command -v "$t" >/dev/null || { echo "install-deps: $t missing after install" >&2; exit 1; }
done
python3 -c 'import oras.version; print("install-deps: oras", oras.version.__version__)'
