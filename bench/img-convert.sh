#!/usr/bin/env bash
# Benchmark: `jobctl img convert` against `qemu-img convert` on the same random data, in the same run.
#
#   bench/img-convert.sh [SIZE]        SIZE defaults to 1G (qemu-img size syntax: 512M, 1G, ...)
#   REPS=5 bench/img-convert.sh 1G     number of repetitions (default 3)
#
# Steps: build jobctl (Release, into a private artifacts folder so it never collides with other builds), make SIZE of
# random data as a raw file, then for each repetition time
#   write:  qemu-img convert -O qcow2 src.raw   vs  jobctl img convert -O qcow2 src.raw
#   read:   qemu-img convert -O raw q.qcow2     vs  jobctl img convert -O raw q.qcow2      (sequential qcow2 read)
#   read:   qemu-img compare q.qcow2 src.raw    vs  jobctl img compare q.qcow2 src.raw
# Both tools read the same files (page cache warm) and write into the page cache (qemu-img convert's default
# cache=unsafe never flushes; jobctl does not either). Every output is verified with qemu-img check/compare.
# Prints each run's wall and CPU seconds, the best of each, and the ratios qemu/jobctl (>= 1.0: jobctl as fast or faster).
set -euo pipefail

SIZE=${1:-1G}
REPS=${REPS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${JOBCTL_BENCH_BUILD:-${TMPDIR:-/tmp}/jobctl-bench-build}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/img-convert-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

command -v qemu-img >/dev/null || { echo "img-convert.sh: qemu-img is required" >&2; exit 1; }
echo "publishing jobctl (Release, ReadyToRun: no JIT at start-up, as a shipped tool would be) into $BUILD ..."
if ! out=$(dotnet publish "$ROOT/src/JobCore.Cli" -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
           -nologo -clp:ErrorsOnly --artifacts-path "$BUILD" -o "$BUILD/publish" 2>&1); then
  echo "$out" >&2; echo "img-convert.sh: build failed" >&2; exit 1
fi
JOBCTL_DLL=$BUILD/publish/jobctl.dll
[ -f "$JOBCTL_DLL" ] || JOBCTL_DLL=
[ -n "$JOBCTL_DLL" ] || { echo "img-convert.sh: jobctl.dll not found under $BUILD" >&2; exit 1; }
jobctl() { dotnet "$JOBCTL_DLL" "$@"; }

BYTES=$(numfmt --from=iec "${SIZE%B}")
cd "$WORK"
echo "making $SIZE ($BYTES bytes) of random data ..."
head -c "$BYTES" /dev/urandom > src.raw
cat src.raw > /dev/null

# time_it NAME CMD... : runs CMD after a sync; appends wall seconds to NAME.times and CPU seconds (user+sys,
# children included) to NAME.cpu. CPU time is the steadier figure on a loaded machine.
time_it() {
  local name=$1; shift
  local TIMEFORMAT='%R %U %S' t
  sync
  t=$( { time "$@" >/dev/null; } 2>&1 )
  local wall user sys; read -r wall user sys <<<"$(tail -n 1 <<<"$t")"
  local cpu; cpu=$(echo "$user + $sys" | bc -l)
  printf '%s\n' "$wall" >> "$name.times"
  printf '%s\n' "$cpu" >> "$name.cpu"
  printf '  %-34s %8.3f s wall %8.3f s cpu\n' "$name" "$wall" "$cpu"
}
best() { sort -g "$1.${2:-times}" | head -n 1; }
ratio() { echo "scale=3; $(best "$1" "${3:-times}") / $(best "$2" "${3:-times}")" | bc -l; }
line() {
  printf '  %-28s wall: qemu-img %7.3f jobctl %7.3f ratio %5s | cpu: qemu-img %7.3f jobctl %7.3f ratio %5s\n' "$1" \
    "$(best "$2")" "$(best "$3")" "$(ratio "$2" "$3")" "$(best "$2" cpu)" "$(best "$3" cpu)" "$(ratio "$2" "$3" cpu)"
}

# pair A_NAME A_CMD... -- B_NAME B_CMD... : times both, alternating which goes first between repetitions so that
# neither tool always inherits the other's dirty page cache.
pair() {
  local a=() b=() in_b=0 x
  for x in "$@"; do
    if [ "$x" = "--" ]; then in_b=1; elif [ $in_b -eq 0 ]; then a+=("$x"); else b+=("$x"); fi
  done
  if [ $((i % 2)) -eq 1 ]; then time_it "${a[@]}"; time_it "${b[@]}"; else time_it "${b[@]}"; time_it "${a[@]}"; fi
}

for i in $(seq 1 "$REPS"); do
  echo "repetition $i/$REPS"
  rm -f q.qcow2 j.qcow2
  pair qemu-img-convert-to-qcow2 qemu-img convert -O qcow2 src.raw q.qcow2 -- \
       jobctl-convert-to-qcow2 jobctl img convert -O qcow2 src.raw j.qcow2
  rm -f q-out.raw j-out.raw
  pair qemu-img-convert-qcow2-to-raw qemu-img convert -f qcow2 -O raw q.qcow2 q-out.raw -- \
       jobctl-convert-qcow2-to-raw jobctl img convert -f qcow2 -O raw q.qcow2 j-out.raw
  pair qemu-img-compare-qcow2-raw qemu-img compare -f qcow2 -F raw q.qcow2 src.raw -- \
       jobctl-compare-qcow2-raw jobctl img compare -f qcow2 -F raw q.qcow2 src.raw
done

echo "verifying jobctl's outputs with qemu-img ..."
qemu-img check j.qcow2 >/dev/null
qemu-img compare -f qcow2 -F raw j.qcow2 src.raw >/dev/null
cmp src.raw j-out.raw

echo
echo "summary for $SIZE of random data, best of $REPS (seconds; ratio = qemu-img / jobctl, goal >= 1.0; load: $(cut -d' ' -f1-3 /proc/loadavg)):"
line "convert raw -> qcow2" qemu-img-convert-to-qcow2 jobctl-convert-to-qcow2
line "convert qcow2 -> raw (read)" qemu-img-convert-qcow2-to-raw jobctl-convert-qcow2-to-raw
line "compare qcow2 vs raw (read)" qemu-img-compare-qcow2-raw jobctl-compare-qcow2-raw
