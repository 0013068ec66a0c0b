#!/usr/bin/env bash
# The same comparison with tools that are not berth's own: curl pushes and
# pulls a 1 GiB layer to and from berth and CNCF distribution, and curl
# (sequential, one kept-alive connection) and wrk (32 connections) GET a
# manifest. Servers start as in bench/compare.sh (bench/lib.sh); rounds
# alternate which server goes first; the table shows medians.
#
#   bench/curl.sh
#   ROUNDS=5 OUT=/tmp/curl.md bench/curl.sh
#
# Pushes: berth takes the whole blob in one `POST ?digest=` (the spec's
# single-request monolithic upload), distribution in `POST` then `PUT
# ?digest=` (it does not implement the single POST); berth is also timed
# with POST then PUT, the same two requests as distribution.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

ROUNDS=${ROUNDS:-3}
need_tools curl wrk sha256sum
make_work berth-curl

say "making two 1 GiB layers"
head -c 1G /dev/urandom >"$WORK/layer"
head -c 1G /dev/urandom >"$WORK/layer-one"
DIGEST=sha256:$(sha256sum "$WORK/layer" | cut -d' ' -f1)
DIGEST_ONE=sha256:$(sha256sum "$WORK/layer-one" | cut -d' ' -f1)
SIZE=$(stat -c %s "$WORK/layer")
ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json'

# MB/s of a curl transfer: its "%{http_code} %{time_total}", checked.
mbps() {
    case $1 in 2??\ *) ;; *) die "transfer failed: $1" ;; esac
    python3 -c "import sys; print(f'{$SIZE / float(sys.argv[1]) / 1e6:.0f}')" "${1#* }"
}

upload_url() {
    curl -sf -D - -o /dev/null -X POST "$1/v2/$2/blobs/uploads/" |
        tr -d '\r' | sed -n 's/^[Ll]ocation: //p'
}

absolute() { case $2 in http*) echo "$2" ;; *) echo "$1$2" ;; esac; }

put_two_requests() { # URL REPO: POST, then PUT ?digest= with the layer
    local loc sep
    loc=$(absolute "$1" "$(upload_url "$1" "$2")")
    case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
    curl -s -o /dev/null -w '%{http_code} %{time_total}' -T "$WORK/layer" \
        -H 'Content-Type: application/octet-stream' "$loc${sep}digest=$DIGEST"
}

put_one_request() { # URL REPO: POST ?digest= with the other layer
    # (No slash after "uploads": curl -T would append the file's name.)
    curl -s -o /dev/null -w '%{http_code} %{time_total}' -T "$WORK/layer-one" -X POST \
        -H 'Content-Type: application/octet-stream' "$1/v2/$2/blobs/uploads?digest=$DIGEST_ONE"
}

pull() { # URL REPO
    curl -s -o /dev/null -w '%{http_code} %{time_total}' "$1/v2/$2/blobs/$DIGEST"
}

# A small image, so there is a manifest to GET.
push_manifest() { # URL REPO
    local config='{}' cdigest
    cdigest=sha256:$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
    local loc sep
    loc=$(absolute "$1" "$(upload_url "$1" "$2")")
    case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
    printf '%s' "$config" | curl -sf -o /dev/null -X PUT --data-binary @- \
        -H 'Content-Type: application/octet-stream' "$loc${sep}digest=$cdigest"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
        "$cdigest" "$DIGEST" "$SIZE" |
        curl -sf -o /dev/null -X PUT --data-binary @- \
            -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' "$1/v2/$2/manifests/latest"
}

# Sequential manifest GETs over one kept-alive connection, per second.
curl_gets() { # URL REPO
    local url="$1/v2/$2/manifests/latest" n=2000 args=() i
    for i in $(seq 1 $n); do args+=(-o /dev/null "$url"); done
    local t
    t=$(curl -sf -w '%{time_total}\n' -H "$ACCEPT" "${args[@]}" |
        python3 -c 'import sys; print(sum(float(l) for l in sys.stdin))')
    python3 -c "print(f'{$n / $t:.0f}')"
}

wrk_gets() { # URL REPO
    wrk -t2 -c32 -d5s -H "$ACCEPT" "$1/v2/$2/manifests/latest" |
        awk '/^Requests\/sec/ { printf "%.0f\n", $2 }'
}

for round in $(seq 1 "$ROUNDS"); do
    start berth
    start dist
    order="berth dist"
    [ $((round % 2)) = 0 ] && order="dist berth"
    for name in $order; do
        url=$(eval echo "\$URL_$name")
        say "round $round: $name"
        if [ "$name" = berth ]; then
            v=$(mbps "$(put_one_request "$url" curl/one)")
            echo "berth push-1 $round $v" >>"$WORK/results"
        fi
        v=$(mbps "$(put_two_requests "$url" curl/two)")
        echo "$name push-2 $round $v" >>"$WORK/results"
        v=$(mbps "$(pull "$url" curl/two)")
        echo "$name pull $round $v" >>"$WORK/results"
        push_manifest "$url" curl/two
        v=$(curl_gets "$url" curl/two)
        echo "$name curl-get $round $v" >>"$WORK/results"
        v=$(wrk_gets "$url" curl/two)
        echo "$name wrk-get $round $v" >>"$WORK/results"
    done
    stop berth
    stop dist
done

REPORT=$(python3 - "$WORK/results" "$ROUNDS" <<'PY'
import statistics, sys
from collections import defaultdict
vals = defaultdict(list)
for line in open(sys.argv[1]):
    name, what, rnd, v = line.split()
    vals[(name, what)].append(float(v))
def med(name, what):
    v = vals.get((name, what))
    return statistics.median(v) if v else None
rows = [
    ("push 1 GiB, one `POST ?digest=` (MB/s)", "push-1", "push-2"),
    ("push 1 GiB, `POST` + `PUT ?digest=` (MB/s)", "push-2", "push-2"),
    ("pull 1 GiB, `GET` to /dev/null (MB/s)", "pull", "pull"),
    ("manifest GET, curl, 1 connection, sequential (req/s)", "curl-get", "curl-get"),
    ("manifest GET, wrk, 32 connections (req/s)", "wrk-get", "wrk-get"),
]
print(f"| curl / wrk, medians of {sys.argv[2]} rounds | berth | distribution | ratio |")
print("|---|---:|---:|---:|")
for label, b, d in rows:
    bv, dv = med("berth", b), med("dist", d)
    ratio = f"{bv / dv:.1f}x" if bv and dv else "-"
    print(f"| {label} | {bv:,.0f} | {dv:,.0f} | {ratio} |")
PY
)
printf '%s\n' "$REPORT"
if [ -n "${OUT:-}" ]; then
    printf '%s\n' "$REPORT" >"$OUT"
    say "wrote $OUT"
fi
