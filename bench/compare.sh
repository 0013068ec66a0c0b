#!/usr/bin/env bash
# Side-by-side benchmark: berth and CNCF distribution (Debian's
# docker-registry, the registry:2 most people run) on this machine, in one
# run, driven by the same `berth bench` workloads, alternating which server
# goes first, over several rounds. Prints (and writes to $OUT) a table of
# medians with the ratio berth/distribution per workload, each server's CPU
# time per operation, start-up time, idle RSS and peak RSS.
#
#   bench/compare.sh                       # about 10 minutes on 2 cores
#   ROUNDS=3 BIG_ROUNDS=1 bench/compare.sh # quicker
#   OUT=bench/RESULTS.md bench/compare.sh  # refresh the committed results
#
# Settings (environment):
#   ROUNDS      rounds of the small and 32-connection workloads (5)
#   BIG_ROUNDS  rounds that also push and pull 1 GiB layers (3)
#   DURATION    length of each time-bounded workload (3s)
#   BENCH_DIR   where both servers keep their data: /dev/shm (tmpfs) when
#               it exists, so neither disk speed nor fsync decides a push;
#               set e.g. BENCH_DIR=/var/tmp to measure on disk
#   BERTH       the berth binary (built with `cargo build --release` if unset)
#   REGISTRY    the distribution binary (/usr/bin/docker-registry, installed
#               with apt-get if missing)
#   OUT         also write the report here
#   KEEP=1      keep the work directory (logs, each run's JSON) afterwards
#
# Both servers start with equivalent settings (see bench/lib.sh).
#
# Each round starts both servers afresh (so start-up time and idle RSS are
# measured every round, and no round inherits the last one's data), runs
# the 32-connection workloads first (so VmHWM after them is the peak RSS
# under that load), then the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

ROUNDS=${ROUNDS:-5}
BIG_ROUNDS=${BIG_ROUNDS:-3}
DURATION=${DURATION:-3s}
COMMAND="bench/compare.sh with ROUNDS=$ROUNDS BIG_ROUNDS=$BIG_ROUNDS DURATION=$DURATION BENCH_DIR=$BENCH_DIR"

need_tools curl
# The floor under a push on this machine (examples/ingest_floor.rs: the
# CPU work no push can avoid, and the ceiling it implies), measured next to
# each round's 1 GiB pushes so the two see the same load.
FLOOR=${FLOOR:-target/release/examples/ingest_floor}
if [ ! -x "$FLOOR" ]; then
    cargo build --release --quiet --example ingest_floor
fi
if [ "$(stat -f -c %T "$BENCH_DIR")" = tmpfs ]; then
    avail=$(awk '/MemAvailable/ { print int($2 / 1048576) }' /proc/meminfo)
    [ "$avail" -ge 8 ] || die "only ${avail} GiB of memory free for tmpfs data in $BENCH_DIR (8 needed); set BENCH_DIR to a disk directory"
fi
make_work berth-compare
mkdir -p "$WORK/json"

# run GROUP ROUND SERVER ARGS...: one `berth bench` run, JSON kept.
run() {
    local group=$1 round=$2 name=$3
    shift 3
    local url pid
    url=$(eval echo "\$URL_$name")
    pid=$(eval echo "\$PID_$name")
    say "round $round: $name: $group"
    if ! "$BERTH" bench "$url" --json --quiet --server-pid "$pid" "$@" \
        >"$WORK/json/$name-$group-$round.json" 2>>"$WORK/bench-errors.log"; then
        say "  (some operations failed; see the errors column)"
    fi
}

# both GROUP ROUND ARGS...: the group against both, alternating who starts.
both() {
    local group=$1 round=$2 name
    shift 2
    if [ $((round % 2)) = 1 ]; then
        run "$group" "$round" berth "$@"
        run "$group" "$round" dist "$@"
    else
        run "$group" "$round" dist "$@"
        run "$group" "$round" berth "$@"
    fi
    for name in berth dist; do
        kill -0 "$(eval echo "\$PID_$name")" 2>/dev/null ||
            die "$name exited during $group (out of memory? see $WORK/$name.log and dmesg)"
    done
}

# record FILE ROUND FIELD: "name round value" for both servers.
record() {
    local name pid
    for name in berth dist; do
        pid=$(eval echo "\$PID_$name")
        echo "$name $2 $(kib "$pid" "$3")" >>"$WORK/$1"
    done
}

# fresh: (re)start both servers on empty data directories, so no group
# inherits another's data (tmpfs is memory: 1 GiB groups would otherwise
# pile up several GiB per server). Records each start-up time and the RSS
# one second after it, and each instance's peak RSS when it stops.
RUNNING=0
fresh() {
    local name
    if [ "$RUNNING" = 1 ]; then
        record peaks "$round" VmHWM
        stop berth
        stop dist
    fi
    start berth
    start dist
    RUNNING=1
    sleep 1
    for name in berth dist; do
        echo "$name $round $(eval echo "\$START_MS_$name") $(kib "$(eval echo "\$PID_$name")" VmRSS)" \
            >>"$WORK/starts"
    done
}

say "data under $WORK ($(stat -f -c %T "$WORK")), $ROUNDS rounds ($BIG_ROUNDS with 1 GiB layers)"
for round in $(seq 1 "$ROUNDS"); do
    fresh
    # The machine's own limits, once per round.
    "$BERTH" bench "$URL_berth" -w blob-head -n 1 --json --quiet >"$WORK/json/limits-$round.json"
    # 32 connections first: VmHWM after these is the peak under that load.
    both c32 "$round" -c 32 -d "$DURATION" --tags 1000 --skip-limits \
        -w manifest-get-tag,manifest-get-digest,manifest-head-tag,manifest-head-digest,blob-head,tags-list,catalog
    both pull32 "$round" -c 32 -n 64 -s 100MiB -w pull --skip-limits
    record peaks32 "$round" VmHWM
    fresh
    both small "$round" -c 4 -d "$DURATION" -s 1MiB -w push-monolithic,push-chunked,pull --skip-limits
    both mixed "$round" -c 8 -d "$DURATION" -s 1MiB -w mixed --skip-limits
    both mid "$round" -c 1 -n 4 -s 100MiB -w push-monolithic,push-chunked,pull --skip-limits
    if [ "$round" -le "$BIG_ROUNDS" ]; then
        "$FLOOR" "$WORK" 1GiB |
            sed -n "s/^ingest floor: .* = \([0-9.]*\) ns.*ceiling \([0-9.]*\) MB.*/floor $round \1 \2/p" >>"$WORK/floor"
        fresh
        both big1 "$round" -c 1 -n 2 -s 1GiB -w push-monolithic --skip-limits
        fresh
        both big2 "$round" -c 1 -n 2 -s 1GiB -w push-chunked --skip-limits
        fresh
        both big3 "$round" -c 1 -n 3 -s 1GiB -w pull --skip-limits
    fi
    record peaks "$round" VmHWM
    stop berth
    stop dist
    RUNNING=0
done

REPORT=$( (
    machine
    echo "- command: $COMMAND"
) | python3 bench/report.py "$WORK")
printf '%s\n' "$REPORT"
if [ -n "${OUT:-}" ]; then
    printf '%s\n' "$REPORT" >"$OUT"
    say "wrote $OUT"
fi
if [ -s "$WORK/bench-errors.log" ]; then
    say "bench errors (first lines):"
    head -5 "$WORK/bench-errors.log" >&2
fi
