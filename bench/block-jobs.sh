#!/usr/bin/env bash
# Benchmark: the block jobs of jobcored against `cp` of the same data, in the same run.
#
#   bench/block-jobs.sh [SIZE]          SIZE defaults to 1G (qemu-img size syntax: 256M, 1G, ...)
#   SPARSE=10G bench/block-jobs.sh 1G   virtual size of the sparse stream image (default 10G, 5% allocated)
#
# Steps: build jobcored (Release, into a private artifacts folder so it never collides with other builds), make SIZE of
# random data, convert it to a qcow2 with 64 KiB clusters, start jobcored with the block plugin and drive it over QMP
# (socat + jq). Each job is timed from the command to its event, right after `cp` of the same SIZE of data:
#   stream            base(data) <- top(empty):        block-stream top                      -> BLOCK_JOB_COMPLETED
#   commit            base(empty) <- mid(data) <- top:  block-commit top-node=mid base-node=base -> BLOCK_JOB_COMPLETED
#   active commit     base(empty) <- top(data):         block-commit top                      -> BLOCK_JOB_READY
#   mirror            src(data), tgt(empty):            blockdev-mirror sync=full             -> BLOCK_JOB_READY
# (commit and mirror reach READY with the target flushed; stream and commit flush the rewritten header.)
# The baseline is `cp data.raw copy.raw` followed by `sync copy.raw` (the jobs' results are flushed too); the plain
# `cp` (page cache only) is printed as well. Every result is checked with qemu-img compare against the data.
# Finally a SPARSE image with 5% of its clusters allocated (1 MiB of random data every 20 MiB) is streamed: its
# time must follow the allocated bytes, not the virtual size; printed as seconds per allocated GiB next to the dense run.
set -euo pipefail

SIZE=${1:-1G}
SPARSE=${SPARSE:-10G}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${JOBCORED_BENCH_BUILD:-${TMPDIR:-/tmp}/jobcored-bench-build}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/block-jobs-bench.XXXXXX")
DAEMON_PID=
cleanup() {
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in qemu-img socat jq numfmt bc; do
  command -v "$tool" >/dev/null || { echo "block-jobs.sh: $tool is required" >&2; exit 1; }
done

echo "building jobcored (Release) into $BUILD ..."
if ! out=$(dotnet build "$ROOT/src/JobCore.Daemon" -c Release -nologo -clp:ErrorsOnly --artifacts-path "$BUILD" 2>&1); then
  echo "$out" >&2; echo "block-jobs.sh: build failed" >&2; exit 1
fi
DAEMON_DLL=$(find "$BUILD/bin" -name jobcored.dll -path '*release*' | head -n 1)
[ -n "$DAEMON_DLL" ] || { echo "block-jobs.sh: jobcored.dll not found under $BUILD" >&2; exit 1; }
mkdir -p "$WORK/plugins"
cp "$(dirname "$DAEMON_DLL")/JobCore.Block.dll" "$WORK/plugins/"

BYTES=$(numfmt --from=iec "${SIZE%B}")
cd "$WORK"
echo "making $SIZE ($BYTES bytes) of random data ..."
head -c "$BYTES" /dev/urandom > data.raw
qemu-img convert -f raw -O qcow2 -o cluster_size=64k data.raw data.qcow2
empty() { qemu-img create -q -f qcow2 -o cluster_size=64k "$@"; }

# ---------------------------------------------------------------- QMP over socat
SOCK="$WORK/qmp.sock"
# The runtime settings jobctl ships with (src/JobCore.Cli/JobCore.Cli.csproj): 4 minimum pool threads, no pool
# spinning, no tiered PGO; BENCH_DEFAULT_RUNTIME=1 runs the daemon with the runtime defaults instead.
if [ "${BENCH_DEFAULT_RUNTIME:-0}" != 1 ]; then
  export DOTNET_ThreadPool_ForceMinWorkerThreads=4 DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0 DOTNET_TieredPGO=0
fi
dotnet "$DAEMON_DLL" --qmp "unix:$SOCK,server=on,wait=off" --plugins "$WORK/plugins" --log-level Warning 2>daemon.log &
DAEMON_PID=$!
for _ in $(seq 1 300); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { cat daemon.log >&2; echo "block-jobs.sh: jobcored did not start" >&2; exit 1; }
coproc QMP { socat - "UNIX-CONNECT:$SOCK"; }
: > events.log
read -r _greeting <&"${QMP[0]}"

# qmp_try JSON: sends one command, logs events that arrive before the reply, prints the reply; returns 1 on an error
# reply. qmp JSON: the same, but an error reply ends the benchmark.
qmp_try() {
  echo "$1" >&"${QMP[1]}"
  local line
  while read -r line <&"${QMP[0]}"; do
    if jq -e 'has("event")' <<<"$line" >/dev/null; then echo "$line" >> events.log; continue; fi
    echo "$line"
    if jq -e 'has("error")' <<<"$line" >/dev/null; then return 1; fi
    return 0
  done
  echo "block-jobs.sh: QMP connection closed" >&2; cat daemon.log >&2; exit 1
}
qmp() {
  local reply
  reply=$(qmp_try "$1") || { echo "block-jobs.sh: $1 -> $reply" >&2; exit 1; }
  echo "$reply"
}
# wait_event NAME JOB: returns once event NAME about JOB was seen (already logged, or read now).
wait_event() {
  local line
  local filter=".event == \"$1\" and (.data.device == \"$2\" or .data.id == \"$2\")"
  if jq -e -s "map(select($filter)) | length > 0" events.log >/dev/null 2>&1; then return 0; fi
  while read -r line <&"${QMP[0]}"; do
    echo "$line" >> events.log
    if jq -e "$filter" <<<"$line" >/dev/null; then
      if jq -e '.data.error' <<<"$line" >/dev/null; then echo "block-jobs.sh: job failed: $line" >&2; exit 1; fi
      return 0
    fi
  done
  echo "block-jobs.sh: QMP connection closed" >&2; cat daemon.log >&2; exit 1
}
add_qcow2() { # NODE FILE BACKING(node name or null)
  local backing=$3; [ "$backing" = null ] || backing="\"$backing\""
  qmp "$(jq -nc --arg n "$1" --arg f "$WORK/$2" --argjson b "$backing" \
    '{execute:"blockdev-add",arguments:{driver:"qcow2","node-name":$n,file:{driver:"file",filename:$f},backing:$b}}')" >/dev/null
}
del() { for n in "$@"; do qmp "{\"execute\":\"blockdev-del\",\"arguments\":{\"node-name\":\"$n\"}}" >/dev/null; done; }
qmp '{"execute":"qmp_capabilities"}' >/dev/null

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l; }
# time_cp: the faster of two runs of cp of the data, printed as "cp cp+sync" seconds (the faster cp makes the
# stricter baseline; the host's disk throughput varies from run to run).
time_cp() {
  local best1= best2= i
  for i in 1 2; do
    rm -f copy.raw; sync
    local t0; t0=$(now); cp data.raw copy.raw; local t1; t1=$(since "$t0")
    sync copy.raw; local t2; t2=$(since "$t0")
    if [ -z "$best1" ] || [ "$(echo "$t1 < $best1" | bc -l)" = 1 ]; then best1=$t1; fi
    if [ -z "$best2" ] || [ "$(echo "$t2 < $best2" | bc -l)" = 1 ]; then best2=$t2; fi
  done
  rm -f copy.raw; echo "$best1 $best2"
}
check_equal() { # FILE: the guest view of FILE must equal the data
  qemu-img compare -q -f raw data.raw "$1" || { echo "block-jobs.sh: $1 differs from the data" >&2; exit 1; }
}
RESULTS=()
report() { # NAME JOB_SECONDS CP CP+SYNC
  local r1 r2; r1=$(echo "scale=3; $3 / $2" | bc -l); r2=$(echo "scale=3; $4 / $2" | bc -l)
  local row; row=$(printf '  %-16s %8.3f s   cp %7.3f s (ratio %5s)   cp+sync %7.3f s (ratio %5s)' "$1" "$2" "$3" "$r1" "$4" "$r2")
  echo "$row"; RESULTS+=("$row")
}

# ---------------------------------------------------------------- the jobs
echo "jobs on $SIZE of random data (64 KiB clusters):"

# stream_once NAME: a fresh base(data) <- top(empty) chain streamed whole; sets STREAM_DENSE.
stream_once() {
  cp data.qcow2 s-base.qcow2; qemu-img create -q -f qcow2 -o cluster_size=64k -b s-base.qcow2 -F qcow2 s-top.qcow2; sync
  add_qcow2 sbase s-base.qcow2 null; add_qcow2 stop s-top.qcow2 sbase
  read -r cp1 cp2 <<<"$(time_cp)"; sync
  t0=$(now); qmp '{"execute":"block-stream","arguments":{"job-id":"s","device":"stop"}}' >/dev/null
  wait_event BLOCK_JOB_COMPLETED s; t=$(since "$t0"); : > events.log
  report "$1" "$t" "$cp1" "$cp2"; del stop sbase; check_equal s-top.qcow2; rm -f s-*.qcow2
  STREAM_DENSE=$t
}
# The daemon's first job also pays for JIT and thread-pool warm-up; it is shown, then measured again.
stream_once "stream (1st job)"
stream_once stream

empty c-base.qcow2 "$BYTES"; cp data.qcow2 c-mid.qcow2; qemu-img rebase -u -f qcow2 -b c-base.qcow2 -F qcow2 c-mid.qcow2
qemu-img create -q -f qcow2 -o cluster_size=64k -b c-mid.qcow2 -F qcow2 c-top.qcow2; sync
add_qcow2 cbase c-base.qcow2 null; add_qcow2 cmid c-mid.qcow2 cbase; add_qcow2 ctop c-top.qcow2 cmid
read -r cp1 cp2 <<<"$(time_cp)"; sync
t0=$(now); qmp '{"execute":"block-commit","arguments":{"job-id":"c","device":"ctop","top-node":"cmid","base-node":"cbase"}}' >/dev/null
wait_event BLOCK_JOB_COMPLETED c; t=$(since "$t0")
report commit "$t" "$cp1" "$cp2"; del ctop cmid cbase; check_equal c-base.qcow2; rm -f c-*.qcow2

empty a-base.qcow2 "$BYTES"; cp data.qcow2 a-top.qcow2; qemu-img rebase -u -f qcow2 -b a-base.qcow2 -F qcow2 a-top.qcow2; sync
add_qcow2 abase a-base.qcow2 null; add_qcow2 atop a-top.qcow2 abase
read -r cp1 cp2 <<<"$(time_cp)"; sync
t0=$(now)
if reply=$(qmp_try '{"execute":"block-commit","arguments":{"job-id":"a","device":"atop"}}'); then
  wait_event BLOCK_JOB_READY a; t=$(since "$t0")
  report "active commit" "$t" "$cp1" "$cp2"
  qmp '{"execute":"block-job-cancel","arguments":{"device":"a"}}' >/dev/null; wait_event BLOCK_JOB_COMPLETED a
  check_ro=1
else
  echo "  active commit    not available: $reply"; RESULTS+=("  active commit    not available: $reply"); check_ro=0
fi
del atop abase; [ "$check_ro" = 1 ] && check_equal a-base.qcow2
rm -f a-*.qcow2

cp data.qcow2 m-src.qcow2; empty m-tgt.qcow2 "$BYTES"; sync
add_qcow2 msrc m-src.qcow2 null; add_qcow2 mtgt m-tgt.qcow2 null
read -r cp1 cp2 <<<"$(time_cp)"; sync
t0=$(now)
if reply=$(qmp_try '{"execute":"blockdev-mirror","arguments":{"job-id":"m","device":"msrc","target":"mtgt","sync":"full"}}'); then
  wait_event BLOCK_JOB_READY m; t=$(since "$t0")
  report mirror "$t" "$cp1" "$cp2"
  qmp '{"execute":"block-job-cancel","arguments":{"device":"m"}}' >/dev/null; wait_event BLOCK_JOB_COMPLETED m
  del msrc mtgt; check_equal m-tgt.qcow2
else
  echo "  mirror           not available: $reply"; RESULTS+=("  mirror           not available: $reply"); del msrc mtgt
fi
rm -f m-*.qcow2

# ---------------------------------------------------------------- sparse stream: cost follows allocated data
SPARSE_BYTES=$(numfmt --from=iec "${SPARSE%B}")
STEPS=$((SPARSE_BYTES / (20 << 20)))
echo "sparse stream: $SPARSE virtual, 1 MiB of random data every 20 MiB ($STEPS MiB allocated, 5%) ..."
truncate -s "$SPARSE_BYTES" sparse.raw
for i in $(seq 0 $((STEPS - 1))); do
  dd if=/dev/urandom of=sparse.raw bs=1M count=1 seek=$((i * 20)) conv=notrunc status=none
done
qemu-img convert -f raw -O qcow2 -o cluster_size=64k -S 64k sparse.raw p-base.qcow2
qemu-img create -q -f qcow2 -o cluster_size=64k -b p-base.qcow2 -F qcow2 p-top.qcow2; sync
add_qcow2 pbase p-base.qcow2 null; add_qcow2 ptop p-top.qcow2 pbase
t0=$(now); qmp '{"execute":"block-stream","arguments":{"job-id":"p","device":"ptop"}}' >/dev/null
wait_event BLOCK_JOB_COMPLETED p; t=$(since "$t0")
del ptop pbase
qemu-img compare -q -f raw sparse.raw p-top.qcow2 || { echo "block-jobs.sh: sparse stream result differs" >&2; exit 1; }
dense_per_gib=$(echo "scale=3; $STREAM_DENSE * 1073741824 / $BYTES" | bc -l)
sparse_per_gib=$(echo "scale=3; $t * 1024 / $STEPS" | bc -l)
virtual_ratio=$(echo "scale=4; $t / ($STREAM_DENSE * $SPARSE_BYTES / $BYTES)" | bc -l)
qmp '{"execute":"quit"}' >/dev/null || true
wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=

echo
echo "summary ($SIZE, goal: ratio cp/job >= 0.95):"
printf '%s\n' "${RESULTS[@]}"
printf '  sparse stream    %8.3f s for %s MiB allocated of %s: %s s per allocated GiB (dense: %s s per GiB);\n' "$t" "$STEPS" "$SPARSE" "$sparse_per_gib" "$dense_per_gib"
printf '                   %s of the time a dense %s stream would take (allocated share: 0.05)\n' "$virtual_ratio" "$SPARSE"
