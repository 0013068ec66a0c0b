# Shared by bench/compare.sh and bench/curl.sh (sourced, not run): tools,
# a work directory, and starting berth and CNCF distribution side by side
# with equivalent settings.
#
# Equivalent settings: both listen on 127.0.0.1 (free ports), store blobs on
# the local filesystem in a fresh directory under BENCH_DIR, log one line
# per request at info level to a file, and run with their defaults
# otherwise (distribution: in-memory blob descriptor cache, delete enabled;
# berth: SQLite metadata, online GC). Distribution reads every REGISTRY_*
# variable as configuration, so both start under `env -i`.

REGISTRY=${REGISTRY:-/usr/bin/docker-registry}
if [ -z "${BENCH_DIR:-}" ]; then
    # tmpfs, so that neither disk speed nor fsync decides a push (berth
    # fsyncs every blob before it names it; distribution does not).
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then BENCH_DIR=/dev/shm; else BENCH_DIR=${TMPDIR:-/tmp}; fi
fi

say() { printf '%s\n' "${0##*/}: $*" >&2; }
die() {
    say "$*"
    exit 1
}

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# need_tools TOOL...: distribution (installed with apt when missing), the
# given commands, and a berth binary in $BERTH (built when unset).
need_tools() {
    if [ ! -x "$REGISTRY" ]; then
        say "installing distribution (apt package docker-registry)"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq docker-registry >/dev/null
    fi
    [ -x "$REGISTRY" ] || die "$REGISTRY not found"
    local tool
    for tool in python3 "$@"; do
        command -v "$tool" >/dev/null || die "$tool is required"
    done
    if [ -z "${BERTH:-}" ]; then
        say "building berth (cargo build --release)"
        cargo build --release --quiet
        BERTH=target/release/berth
    fi
    BERTH=$(realpath "$BERTH")
}

# make_work NAME: a fresh $WORK under $BENCH_DIR, removed on exit (kept,
# without the servers' data, with KEEP=1), and every server started
# stopped.
PIDS=()
make_work() {
    WORK=$(mktemp -d "$BENCH_DIR/$1.XXXXXX")
    trap cleanup EXIT
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait_gone "$pid"; done
    if [ "${KEEP:-0}" = 1 ]; then
        rm -rf "$WORK"/*-data
        say "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}

wait_gone() {
    local i
    for i in $(seq 1 500); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.02
    done
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# kib PID FIELD: a /proc/PID/status field (VmRSS, VmHWM) in KiB.
kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# start NAME: launch NAME (berth or dist) on a fresh data directory; sets
# PID_<name>, URL_<name> and START_MS_<name> (exec to first answered
# request, measured by bench/launch.py).
start() {
    local name=$1 port dir out
    port=$(free_port)
    dir="$WORK/$name-data"
    rm -rf "$dir"
    mkdir -p "$dir"
    local cmd=(env -i PATH=/usr/bin:/bin)
    if [ "$name" = berth ]; then
        cmd+=("$BERTH" serve --listen "127.0.0.1:$port" --data-dir "$dir" --log-level info)
    else
        cat >"$WORK/dist.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $dir
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
        cmd+=("$REGISTRY" serve "$WORK/dist.yml")
    fi
    out=$(python3 bench/launch.py "$port" "$WORK/$name.log" "${cmd[@]}") ||
        die "$name did not start; see $WORK/$name.log"
    local pid=${out% *}
    PIDS+=("$pid")
    eval "PID_$name=$pid URL_$name=http://127.0.0.1:$port START_MS_$name=${out#* }"
}

# stop NAME: SIGTERM, and wait for it to exit.
stop() {
    local pid p rest=()
    pid=$(eval echo "\$PID_$1")
    kill "$pid" 2>/dev/null || true
    wait_gone "$pid"
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || rest+=("$p"); done
    PIDS=("${rest[@]}")
}

machine() {
    echo "- CPU: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores available)"
    echo "- memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "- kernel: $(uname -sr); $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "- data directories: $BENCH_DIR ($(stat -f -c %T "$BENCH_DIR"))"
    echo "- berth: $("$BERTH" --version) ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
    echo "- distribution: $("$REGISTRY" --version 2>&1 | head -1)"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
}
