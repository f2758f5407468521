#!/usr/bin/env bash
# Benchmark: the same block jobs on QEMU 7.2's monitor and on jobcored, in one run, with the same images.
#
#   bench/vs-qemu.sh [SIZE]              SIZE defaults to 1G (qemu-img size syntax: 256M, 1G, ...)
#   ROUNDS=6 bench/vs-qemu.sh 1G         rounds of the three jobs per peer (default 4; best and median are reported)
#   QUERIES=1000 PAUSES=50               latency samples (query-jobs round trips, job-pause/job-resume cycles)
#   SETTLE=2                             seconds to wait after the sync before each timed job (default 0)
#
# Steps: build jobcored (Release, into a private artifacts folder so it never collides with other builds), make SIZE
# of random data as a 64 KiB-cluster qcow2, start `qemu-system-x86_64 -machine none -nodefaults -display none -qmp
# unix:...` and `jobcored --qmp unix:...`, then bench/vs-qemu/bench.py drives both over QMP (python3, one connection
# per peer). For every job each peer gets its own fresh copy of the images (made right before, so both copies are
# equally warm in the page cache; nothing is dropped from it), a `sync` runs before each timed job, and the peer that
# goes first alternates from job to job. Each job is timed from the command to its event, and ("on disk") until its
# result is durable: the event, then blockdev-del of the chain (each peer flushes its caches on close) and fsync of the
# written images. QEMU 7.2 ends stream and commit without a flush while jobcored flushes before its event, so "on disk"
# is the like-for-like figure (the goal applies to it); mirror's READY is flushed on both.
#   stream                 base(data) <- top(empty):           block-stream top                        -> BLOCK_JOB_COMPLETED
#   commit (intermediate)  base(empty) <- mid(data) <- top:     block-commit top-node=mid base-node=base -> BLOCK_JOB_COMPLETED
#   mirror to READY        src(data), tgt(empty):               blockdev-mirror sync=full               -> BLOCK_JOB_READY (then cancelled)
# Latencies (medians): query-jobs round trip and job-pause -> JOB_STATUS_CHANGE paused (and job-resume -> running),
# measured while a rate-limited stream keeps running. Both peers first run one small untimed stream (warm-up).
# CPU seconds (user + system, all threads, from /proc) of each peer's process per job are printed beside the wall
# time: the steadier figure on a loaded machine. Every result is checked with qemu-img compare (guest view equal to the data); exit status 1 if a job failed.
set -euo pipefail

SIZE=${1:-1G}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${JOBCORED_BENCH_BUILD:-${TMPDIR:-/tmp}/vs-qemu-bench-build}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vs-qemu-bench.XXXXXX")
DAEMON_PID=
QEMU_PID=
cleanup() {
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null || true
  [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in qemu-img qemu-system-x86_64 python3 numfmt; do
  command -v "$tool" >/dev/null || { echo "vs-qemu.sh: $tool is required" >&2; exit 1; }
done

echo "building jobcored (Release) into $BUILD ..."
if ! out=$(dotnet build "$ROOT/src/JobCore.Daemon" -c Release -nologo -clp:ErrorsOnly --artifacts-path "$BUILD" 2>&1); then
  echo "$out" >&2; echo "vs-qemu.sh: build failed" >&2; exit 1
fi
DAEMON_DLL=$(find "$BUILD/bin" -name jobcored.dll -path '*release*' | head -n 1)
[ -n "$DAEMON_DLL" ] || { echo "vs-qemu.sh: jobcored.dll not found under $BUILD" >&2; exit 1; }
mkdir -p "$WORK/plugins"
cp "$(dirname "$DAEMON_DLL")/JobCore.Block.dll" "$WORK/plugins/"

BYTES=$(numfmt --from=iec "${SIZE%B}")
cd "$WORK"
echo "making $SIZE ($BYTES bytes) of random data ..."
# random_qcow2 NAME BYTES: NAME.raw of random data and NAME.qcow2 (64 KiB clusters) with the same guest view.
random_qcow2() {
  head -c "$2" /dev/urandom > "$1.raw"
  qemu-img convert -f raw -O qcow2 -o cluster_size=64k "$1.raw" "$1.qcow2"
}
random_qcow2 data "$BYTES"
random_qcow2 warm $((64 << 20))   # the untimed warm-up stream
random_qcow2 lat $((256 << 20))   # the rate-limited stream the latencies are measured on

# ---------------------------------------------------------------- the two peers
QSOCK="$WORK/qemu.sock"
JSOCK="$WORK/jobcored.sock"
qemu-system-x86_64 -machine none -nodefaults -display none -qmp "unix:$QSOCK,server=on,wait=off" \
  </dev/null >qemu.log 2>&1 &
QEMU_PID=$!
# The runtime settings jobctl ships with (src/JobCore.Cli/JobCore.Cli.csproj), as bench/block-jobs.sh uses them:
# 4 minimum pool threads, no pool spinning, no tiered PGO; BENCH_DEFAULT_RUNTIME=1 keeps the runtime defaults.
if [ "${BENCH_DEFAULT_RUNTIME:-0}" != 1 ]; then
  export DOTNET_ThreadPool_ForceMinWorkerThreads=4 DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0 DOTNET_TieredPGO=0
fi
dotnet "$DAEMON_DLL" --qmp "unix:$JSOCK,server=on,wait=off" --plugins "$WORK/plugins" --log-level Warning \
  </dev/null 2>daemon.log &
DAEMON_PID=$!
for _ in $(seq 1 300); do [ -S "$QSOCK" ] && [ -S "$JSOCK" ] && break; sleep 0.1; done
[ -S "$QSOCK" ] || { cat qemu.log >&2; echo "vs-qemu.sh: QEMU did not start" >&2; exit 1; }
[ -S "$JSOCK" ] || { cat daemon.log >&2; echo "vs-qemu.sh: jobcored did not start" >&2; exit 1; }

echo "jobs on $SIZE of random data (64 KiB clusters), load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
status=0
python3 "$ROOT/bench/vs-qemu/bench.py" --qemu "$QSOCK" --jobcored "$JSOCK" --work "$WORK" --size "$BYTES" \
  --qemu-pid "$QEMU_PID" --jobcored-pid "$DAEMON_PID" --settle "${SETTLE:-0}" --label "$SIZE " --rounds "${ROUNDS:-4}" --queries "${QUERIES:-1000}" --pauses "${PAUSES:-50}" || status=$?
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$status" != 0 ]; then
  echo "--- qemu.log"; cat qemu.log; echo "--- daemon.log"; tail -n 50 daemon.log
  echo "vs-qemu.sh: FAILED" >&2
fi
exit "$status"
