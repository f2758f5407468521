#!/usr/bin/env bash
# Benchmark: `jobctl img convert|compare|bench` against `qemu-img convert|compare|bench` on the same data, in the same run.
#
#   bench/img-convert.sh [SIZE]        SIZE defaults to 1G (qemu-img size syntax: 512M, 1G, ...)
#   REPS=5 bench/img-convert.sh 1G     number of rounds (default 3)
#   BENCH_SHAPES="1M:8 64k:16"         request size:depth of each `bench` shape (default both of these)
#
# jobctl is published first as a native executable (Native AOT: `dotnet publish -r linux-x64`, as a shipped tool
# would be: no runtime start-up, no JIT), into a private artifacts folder so it never collides with other builds.
# The publish is not timed; both sides are timed as whole processes (start-up, work, exit).
#
# Then SIZE of random data is made as a raw file, and each round times, one tool after the other:
#   convert raw -> qcow2:  qemu-img convert -O qcow2 src.raw      vs  jobctl img convert -O qcow2 src.raw
#   convert qcow2 -> raw:  qemu-img convert -O raw q.qcow2        vs  jobctl img convert -O raw q.qcow2   (sequential qcow2 read)
#   compare qcow2 vs raw:  qemu-img compare q.qcow2 src.raw       vs  jobctl img compare q.qcow2 src.raw
#   bench write:           qemu-img bench -w --pattern 0x5a -c N -s S -d D F    vs  jobctl img bench -w ... (F: a fresh empty SIZE qcow2 each time)
#   bench read:            qemu-img bench -c N -s S -d D F        vs  jobctl img bench ...    (F: the image qemu-img wrote, for both)
# where N = SIZE / S: a sequential write, then read, of the whole image. Which tool goes first alternates between
# rounds (neither always inherits the other's dirty page cache), and every run starts after a `sync`.
# Page cache: both tools read warm files. convert writes into the page cache and never flushes (qemu-img convert's
# default cache=unsafe; jobctl likewise). bench uses cache mode writeback on both sides (qemu-img's default; jobctl
# has no O_DIRECT, so -t none is not compared): the writes go to the page cache and the image is flushed (fdatasync)
# when the tool closes it, so a write run's wall time includes writing the data back to the disk (jobctl starts that
# write-back every 8 MiB while it writes; qemu-img's qcow2 driver flushes mid-run when its metadata needs it).
# Every jobctl output is verified with qemu-img check/compare.
#
# Prints each run (wall, user and system CPU seconds), then per operation the best and the median of the rounds,
# and the ratios qemu-img / jobctl (>= 1.0: jobctl as fast or faster). "Run completed in" (the request loop alone,
# without start-up and the final flush) is kept per run in the work folder's *.loop files and printed in the summary.
set -euo pipefail

SIZE=${1:-1G}
REPS=${REPS:-3}
BENCH_SHAPES=${BENCH_SHAPES:-1M:8 64k:16}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${JOBCTL_BENCH_BUILD:-${TMPDIR:-/tmp}/jobctl-bench-aot}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/img-convert-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

command -v qemu-img >/dev/null || { echo "img-convert.sh: qemu-img is required" >&2; exit 1; }
echo "publishing jobctl (Release, Native AOT) into $BUILD ..."
if ! out=$(dotnet publish "$ROOT/src/JobCore.Cli" -c Release -r linux-x64 -nologo -clp:ErrorsOnly \
           --artifacts-path "$BUILD" -o "$BUILD/publish" 2>&1); then
  echo "$out" >&2; echo "img-convert.sh: publish failed" >&2; exit 1
fi
JOBCTL=$BUILD/publish/jobctl
[ -x "$JOBCTL" ] || { echo "img-convert.sh: native jobctl not found at $JOBCTL" >&2; exit 1; }
jobctl() { "$JOBCTL" "$@"; }

BYTES=$(numfmt --from=iec "${SIZE%B}")
cd "$WORK"
echo "making $SIZE ($BYTES bytes) of random data ..."
head -c "$BYTES" /dev/urandom > src.raw
cat src.raw > /dev/null

# PREP[NAME]: an untimed command run right before NAME's timed run, after the sync (deletes the run's previous
# output, or makes its empty image). Right before, not earlier: on this kind of VM, memory freed more than a second
# or two ago goes back to the host (virtio-balloon free page reporting) and the next writer of 1 GiB into the page
# cache then pays ~1-3 s of extra system time faulting it back in; deleting the old output just before the run
# hands each tool the same just-freed pages, whichever tool goes first.
declare -A PREP
# time_it NAME CMD... : runs CMD after a sync (and PREP[NAME]); appends wall, user and system seconds to NAME.wall/.user/.sys and,
# when CMD prints qemu-img bench's "Run completed in X seconds.", X to NAME.loop.
time_it() {
  local name=$1; shift
  local TIMEFORMAT='%R %U %S' t
  sync
  [ -z "${PREP[$name]:-}" ] || eval "${PREP[$name]}"
  t=$( { time "$@" > "$name.out"; } 2>&1 )
  local wall user sys; read -r wall user sys <<<"$(tail -n 1 <<<"$t")"
  printf '%s\n' "$wall" >> "$name.wall"
  printf '%s\n' "$user" >> "$name.user"
  printf '%s\n' "$sys" >> "$name.sys"
  local loop; loop=$(sed -n 's/^Run completed in \([0-9.]*\) seconds\.$/\1/p' "$name.out")
  [ -z "$loop" ] || printf '%s\n' "$loop" >> "$name.loop"
  printf '  %-30s %7.3f s wall %7.3f s user %7.3f s sys%s\n' "$name" "$wall" "$user" "$sys" "${loop:+ (loop $loop s)}"
}
best() { sort -g "$1" | head -n 1; }
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { echo "scale=2; $1 / $2" | bc -l | sed 's/^\./0./'; }
# line LABEL Q_NAME J_NAME : best and median wall of both, their ratios, best user/sys CPU of both.
line() {
  local qb qm jb jm
  qb=$(best "$2.wall"); qm=$(median "$2.wall"); jb=$(best "$3.wall"); jm=$(median "$3.wall")
  printf '  %-26s best %6.3f / %6.3f = %5s   median %6.3f / %6.3f = %5s   cpu user+sys %5.3f+%5.3f / %5.3f+%5.3f' "$1" \
    "$qb" "$jb" "$(ratio "$qb" "$jb")" "$qm" "$jm" "$(ratio "$qm" "$jm")" \
    "$(best "$2.user")" "$(best "$2.sys")" "$(best "$3.user")" "$(best "$3.sys")"
  if [ -f "$2.loop" ] && [ -f "$3.loop" ]; then
    printf '   loop best %6.3f / %6.3f' "$(best "$2.loop")" "$(best "$3.loop")"
  fi
  printf '\n'
}

# pair Q_NAME Q_CMD... -- J_NAME J_CMD... : times both, alternating which goes first between rounds.
pair() {
  local a=() b=() in_b=0 x
  for x in "$@"; do
    if [ "$x" = "--" ]; then in_b=1; elif [ $in_b -eq 0 ]; then a+=("$x"); else b+=("$x"); fi
  done
  if [ $((i % 2)) -eq 1 ]; then time_it "${a[@]}"; time_it "${b[@]}"; else time_it "${b[@]}"; time_it "${a[@]}"; fi
}

PREP[qemu-convert-to-qcow2]="rm -f q.qcow2"
PREP[jobctl-convert-to-qcow2]="rm -f j.qcow2"
PREP[qemu-convert-to-raw]="rm -f q-out.raw"
PREP[jobctl-convert-to-raw]="rm -f j-out.raw"
for shape in $BENCH_SHAPES; do
  s=${shape%%:*}
  # Each tool writes its own fresh empty image, so every request allocates clusters; both then read qemu-img's.
  PREP[qemu-bench-write-$s]="rm -f qb.qcow2; qemu-img create -q -f qcow2 qb.qcow2 $BYTES"
  PREP[jobctl-bench-write-$s]="rm -f jb.qcow2; qemu-img create -q -f qcow2 jb.qcow2 $BYTES"
done

for i in $(seq 1 "$REPS"); do
  echo "round $i/$REPS (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  pair qemu-convert-to-qcow2 qemu-img convert -O qcow2 src.raw q.qcow2 -- \
       jobctl-convert-to-qcow2 jobctl img convert -O qcow2 src.raw j.qcow2
  pair qemu-convert-to-raw qemu-img convert -f qcow2 -O raw q.qcow2 q-out.raw -- \
       jobctl-convert-to-raw jobctl img convert -f qcow2 -O raw q.qcow2 j-out.raw
  pair qemu-compare qemu-img compare -f qcow2 -F raw q.qcow2 src.raw -- \
       jobctl-compare jobctl img compare -f qcow2 -F raw q.qcow2 src.raw
  for shape in $BENCH_SHAPES; do
    s=${shape%%:*}; d=${shape##*:}; n=$((BYTES / $(numfmt --from=iec "${s^^}")))
    pair "qemu-bench-write-$s" qemu-img bench -w --pattern 0x5a -f qcow2 -t writeback -c "$n" -s "$s" -d "$d" qb.qcow2 -- \
         "jobctl-bench-write-$s" jobctl img bench -w --pattern 0x5a -f qcow2 -t writeback -c "$n" -s "$s" -d "$d" jb.qcow2
    pair "qemu-bench-read-$s" qemu-img bench -f qcow2 -t writeback -c "$n" -s "$s" -d "$d" qb.qcow2 -- \
         "jobctl-bench-read-$s" jobctl img bench -f qcow2 -t writeback -c "$n" -s "$s" -d "$d" qb.qcow2
  done
done

echo "verifying jobctl's outputs with qemu-img ..."
qemu-img check j.qcow2 >/dev/null
qemu-img compare -f qcow2 -F raw j.qcow2 src.raw >/dev/null
cmp src.raw j-out.raw
qemu-img check jb.qcow2 >/dev/null
qemu-img compare -f qcow2 -F qcow2 jb.qcow2 qb.qcow2 >/dev/null   # both written with pattern 0x5a all over
qemu-io -f qcow2 -c "read -P 0x5a 0 $BYTES" jb.qcow2 | grep -q "^read $BYTES/$BYTES"

echo
echo "summary for $SIZE, $REPS rounds (wall seconds qemu-img / jobctl = ratio, goal >= 1.0; load: $(cut -d' ' -f1-3 /proc/loadavg)):"
line "convert raw -> qcow2" qemu-convert-to-qcow2 jobctl-convert-to-qcow2
line "convert qcow2 -> raw" qemu-convert-to-raw jobctl-convert-to-raw
line "compare qcow2 vs raw" qemu-compare jobctl-compare
for shape in $BENCH_SHAPES; do
  s=${shape%%:*}; d=${shape##*:}
  line "bench write ${s} x${d}" "qemu-bench-write-$s" "jobctl-bench-write-$s"
  line "bench read  ${s} x${d}" "qemu-bench-read-$s" "jobctl-bench-read-$s"
done
