#!/usr/bin/env bash
# Benchmark: the block jobs of jobcored against `cp` of the same data, in the same run.
#
#   bench/block-jobs.sh [SIZE]          SIZE defaults to 1G (qemu-img size syntax: 256M, 1G, ...)
#   SPARSE=10G bench/block-jobs.sh 1G   virtual size of the sparse stream image (default 10G, 5% allocated)
#   REPS=5 bench/block-jobs.sh 1G       rounds (default 3); best and median of the rounds are reported
#
# Steps: build jobcored (Release, into a private artifacts folder so it never collides with other builds), make SIZE of
# random data, convert it to a qcow2 with 64 KiB clusters, start jobcored with the block plugin and drive it over QMP
# (socat + jq). Each job is timed from the command to the timestamp of its event, right after `cp` + `sync` of the same SIZE of data
# (interleaved: cp+sync, stream, cp+sync, commit, ..., REPS rounds), each on freshly made images:
#   stream            base(data) <- top(empty):        block-stream top                      -> BLOCK_JOB_COMPLETED
#   commit            base(empty) <- mid(data) <- top:  block-commit top-node=mid base-node=base -> BLOCK_JOB_COMPLETED
#   active commit     base(empty) <- top(data):         block-commit top                      -> BLOCK_JOB_READY
#   mirror            src(data), tgt(empty):            blockdev-mirror sync=full             -> BLOCK_JOB_READY
# (commit and mirror reach READY with the target flushed; stream and commit flush the rewritten header.)
# The baseline is `cp data.raw copy.raw` followed by `sync copy.raw`, because the jobs' results are flushed too; the
# plain `cp` (page cache only) is printed as well. Every result is checked with qemu-img compare against the data.
# Finally a SPARSE image with 5% of its clusters allocated (1 MiB of random data every 20 MiB) is streamed: its
# time must follow the allocated bytes, not the virtual size; printed as seconds per allocated GiB next to the dense run.
set -euo pipefail

SIZE=${1:-1G}
SPARSE=${SPARSE:-10G}
REPS=${REPS:-3}
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
# wait_event NAME JOB: returns once event NAME about JOB was seen (already logged, or read now); the event is kept
# in last-event.json for event_since.
wait_event() {
  local line
  local filter=".event == \"$1\" and (.data.device == \"$2\" or .data.id == \"$2\")"
  if jq -e -c -s "map(select($filter)) | first" events.log > last-event.json 2>/dev/null; then return 0; fi
  while read -r line <&"${QMP[0]}"; do
    echo "$line" >> events.log
    if jq -e "$filter" <<<"$line" >/dev/null; then
      if jq -e '.data.error' <<<"$line" >/dev/null; then echo "block-jobs.sh: job failed: $line" >&2; exit 1; fi
      echo "$line" > last-event.json
      return 0
    fi
  done
  echo "block-jobs.sh: QMP connection closed" >&2; cat daemon.log >&2; exit 1
}
# event_since T0: seconds from T0 to the timestamp the daemon put on the last waited-for event, so the time this
# script needs to read and parse events (jq processes, slow on a loaded machine) does not count.
event_since() {
  echo "$(jq -r '"\(.timestamp.seconds).\(.timestamp.microseconds + 1000000 | tostring | .[1:])"' last-event.json) - $1" | bc -l
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
# time_cp: one `cp data.raw copy.raw` then `sync copy.raw`; prints "cp cp+sync" seconds.
time_cp() {
  rm -f copy.raw; sync
  local t0; t0=$(now); cp data.raw copy.raw; local t1; t1=$(since "$t0")
  sync copy.raw; local t2; t2=$(since "$t0")
  rm -f copy.raw; echo "$t1 $t2"
}
check_equal() { # FILE: the guest view of FILE must equal the data
  qemu-img compare -q -f raw data.raw "$1" || { echo "block-jobs.sh: $1 differs from the data" >&2; exit 1; }
}
# stats V...: "best median" of the values.
stats() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {m = NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; printf "%.3f %.3f\n", v[1], m}'; }
ratio() { echo "scale=2; $1 / $2" | bc -l | sed 's/^\./0./'; }

# ---------------------------------------------------------------- the jobs
# Each prep_* makes fresh images and opens them (untimed); each job_* then times the job from the command to its
# event, checks the result and prints the seconds, or "n/a REASON" when the daemon refuses the job. The loop runs
# prep, then the cp+sync baseline, then the job, so both timed steps start from the same memory state: on a VM with
# free page reporting (Firecracker, virtio-balloon) page cache freed long ago goes back to the host and costs a host
# fault per page when reused; preparing the images between the baseline and the job would hand the baseline the
# warm pages and the job the cold ones.

prep_stream() { # base(data) <- top(empty)
  cp data.qcow2 s-base.qcow2; empty -b s-base.qcow2 -F qcow2 s-top.qcow2; sync
  add_qcow2 sbase s-base.qcow2 null; add_qcow2 stop s-top.qcow2 sbase
}
job_stream() {
  local t0 t; t0=$(now); qmp '{"execute":"block-stream","arguments":{"job-id":"s","device":"stop"}}' >/dev/null
  wait_event BLOCK_JOB_COMPLETED s; t=$(event_since "$t0"); : > events.log
  del stop sbase; check_equal s-top.qcow2; rm -f s-*.qcow2; echo "$t"
}
prep_commit() { # base(empty) <- mid(data) <- top(empty), top-node=mid
  empty c-base.qcow2 "$BYTES"; cp data.qcow2 c-mid.qcow2; qemu-img rebase -u -f qcow2 -b c-base.qcow2 -F qcow2 c-mid.qcow2
  empty -b c-mid.qcow2 -F qcow2 c-top.qcow2; sync
  add_qcow2 cbase c-base.qcow2 null; add_qcow2 cmid c-mid.qcow2 cbase; add_qcow2 ctop c-top.qcow2 cmid
}
job_commit() {
  local t0 t; t0=$(now)
  qmp '{"execute":"block-commit","arguments":{"job-id":"c","device":"ctop","top-node":"cmid","base-node":"cbase"}}' >/dev/null
  wait_event BLOCK_JOB_COMPLETED c; t=$(event_since "$t0"); : > events.log
  del ctop cmid cbase; check_equal c-base.qcow2; rm -f c-*.qcow2; echo "$t"
}
# ready_job JOB COMMAND NODES...: runs COMMAND (a job that reaches READY), times it to BLOCK_JOB_READY, soft-cancels
# it and deletes NODES; prints the seconds or "n/a REASON".
ready_job() {
  local job=$1 command=$2 t0 t reply; shift 2; t0=$(now)
  if ! reply=$(qmp_try "$command"); then del "$@"; echo "n/a $reply"; return; fi
  wait_event BLOCK_JOB_READY "$job"; t=$(event_since "$t0")
  qmp "{\"execute\":\"block-job-cancel\",\"arguments\":{\"device\":\"$job\"}}" >/dev/null
  wait_event BLOCK_JOB_COMPLETED "$job"; : > events.log; del "$@"; echo "$t"
}
prep_active() { # base(empty) <- top(data), to READY, then soft cancel
  empty a-base.qcow2 "$BYTES"; cp data.qcow2 a-top.qcow2; qemu-img rebase -u -f qcow2 -b a-base.qcow2 -F qcow2 a-top.qcow2; sync
  add_qcow2 abase a-base.qcow2 null; add_qcow2 atop a-top.qcow2 abase
}
job_active() {
  local t; t=$(ready_job a '{"execute":"block-commit","arguments":{"job-id":"a","device":"atop"}}' atop abase)
  [ "${t%% *}" = n/a ] || check_equal a-base.qcow2
  rm -f a-*.qcow2; echo "$t"
}
prep_mirror() { # src(data) -> tgt(empty), sync=full, to READY, then soft cancel
  cp data.qcow2 m-src.qcow2; empty m-tgt.qcow2 "$BYTES"; sync
  add_qcow2 msrc m-src.qcow2 null; add_qcow2 mtgt m-tgt.qcow2 null
}
job_mirror() {
  local t; t=$(ready_job m '{"execute":"blockdev-mirror","arguments":{"job-id":"m","device":"msrc","target":"mtgt","sync":"full"}}' msrc mtgt)
  [ "${t%% *}" = n/a ] || check_equal m-tgt.qcow2
  rm -f m-*.qcow2; echo "$t"
}

JOBS=(stream commit active mirror)
declare -A LABEL=([stream]="stream" [commit]="commit" [active]="active commit" [mirror]="mirror")
declare -A T_JOB T_CP T_CPS NA
echo "jobs on $SIZE of random data (64 KiB clusters), $REPS interleaved rounds (cp+sync, job, cp+sync, job, ...); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# The daemon's first job also pays for JIT compilation and thread-pool warm-up: shown, not counted.
prep_stream
FIRST=$(job_stream)
[[ $FIRST =~ ^[0-9.]+$ ]] || { echo "block-jobs.sh: the first stream failed" >&2; exit 1; }
printf '  %-16s %8.3f s   (first job of the daemon: JIT warm-up, not counted)\n' "stream" "$FIRST"
for round in $(seq 1 "$REPS"); do
  for j in "${JOBS[@]}"; do
    [ -n "${NA[$j]:-}" ] && continue
    "prep_$j"
    read -r c1 c2 <<<"$(time_cp)"; sync
    t=$("job_$j")
    if [ "${t%% *}" = n/a ]; then NA[$j]=${t#n/a }; echo "  ${LABEL[$j]}: not available: ${NA[$j]}"; continue; fi
    [[ $t =~ ^[0-9.]+$ ]] || { echo "block-jobs.sh: ${LABEL[$j]} failed" >&2; exit 1; }
    T_JOB[$j]+="$t "; T_CP[$j]+="$c1 "; T_CPS[$j]+="$c2 "
    printf '  round %d  %-14s %7.3f s   cp+sync %7.3f s   cp %7.3f s\n' "$round" "${LABEL[$j]}" "$t" "$c2" "$c1"
  done
done
# shellcheck disable=SC2086
read -r STREAM_BEST STREAM_MEDIAN <<<"$(stats ${T_JOB[stream]})"

# ---------------------------------------------------------------- sparse stream: cost follows allocated data
SPARSE_BYTES=$(numfmt --from=iec "${SPARSE%B}")
STEPS=$((SPARSE_BYTES / (20 << 20)))
echo "sparse stream: $SPARSE virtual, 1 MiB of random data every 20 MiB ($STEPS MiB allocated, 5%), $REPS rounds ..."
truncate -s "$SPARSE_BYTES" sparse.raw
for i in $(seq 0 $((STEPS - 1))); do
  dd if=/dev/urandom of=sparse.raw bs=1M count=1 seek=$((i * 20)) conv=notrunc status=none
done
qemu-img convert -f raw -O qcow2 -o cluster_size=64k -S 64k sparse.raw p-base.qcow2
T_SPARSE=
for round in $(seq 1 "$REPS"); do
  empty -b p-base.qcow2 -F qcow2 p-top.qcow2; sync
  add_qcow2 pbase p-base.qcow2 null; add_qcow2 ptop p-top.qcow2 pbase
  t0=$(now); qmp '{"execute":"block-stream","arguments":{"job-id":"p","device":"ptop"}}' >/dev/null
  wait_event BLOCK_JOB_COMPLETED p; t=$(event_since "$t0"); : > events.log
  del ptop pbase
  qemu-img compare -q -f raw sparse.raw p-top.qcow2 || { echo "block-jobs.sh: sparse stream result differs" >&2; exit 1; }
  rm -f p-top.qcow2; T_SPARSE+="$t "
  printf '  round %d  %-14s %7.3f s\n' "$round" "sparse stream" "$t"
done
qmp '{"execute":"quit"}' >/dev/null || true
wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=

echo
echo "summary ($SIZE, $REPS rounds, load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "  goal: every job >= 0.95x the throughput of cp+sync. The baseline is cp+sync, not cp alone, because every job"
echo "  flushes its result (stream and commit the rewritten image, active commit and mirror the target before READY);"
echo "  ratio = cp+sync seconds / job seconds (> 1 = the job is faster), best against best and median against median."
printf '  %-14s %9s %9s   %9s %9s   %6s %6s   %9s\n' job "best" "median" "cp+sync" "median" "ratio" "median" "cp best"
for j in "${JOBS[@]}"; do
  if [ -n "${NA[$j]:-}" ]; then printf '  %-14s not available: %s\n' "${LABEL[$j]}" "${NA[$j]}"; continue; fi
  # shellcheck disable=SC2086
  read -r jb jm <<<"$(stats ${T_JOB[$j]})"; read -r sb sm <<<"$(stats ${T_CPS[$j]})"; read -r cb _ <<<"$(stats ${T_CP[$j]})"
  printf '  %-14s %7.3f s %7.3f s   %7.3f s %7.3f s   %6s %6s   %7.3f s\n' "${LABEL[$j]}" "$jb" "$jm" "$sb" "$sm" "$(ratio "$sb" "$jb")" "$(ratio "$sm" "$jm")" "$cb"
done
# shellcheck disable=SC2086
read -r pb pm <<<"$(stats $T_SPARSE)"
echo "  sparse stream (goal: time proportional to the allocated data, i.e. about 0.05 of a dense $SPARSE stream):"
printf '    best %.3f s, median %.3f s for %s MiB allocated of %s: %s s per allocated GiB (dense stream: %s s per GiB)\n' \
  "$pb" "$pm" "$STEPS" "$SPARSE" "$(echo "scale=3; $pm * 1024 / $STEPS" | bc -l)" "$(echo "scale=3; $STREAM_MEDIAN * 1073741824 / $BYTES" | bc -l)"
printf '    %s of the time a dense %s stream would take (medians; allocated share: 0.05)\n' \
  "$(echo "scale=4; $pm / ($STREAM_MEDIAN * $SPARSE_BYTES / $BYTES)" | bc -l | sed 's/^\./0./')" "$SPARSE"
