#!/usr/bin/env python3
"""Drives QEMU's monitor and jobcored over QMP with the same images and prints the comparison table.

Called by bench/vs-qemu.sh once both peers listen; see that script for the overview. One connection per peer is kept
for the whole run (QEMU's monitor serves one client at a time). Exit status 1 when a job fails or a result differs.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

CLUSTER = "cluster_size=64k"


class Failure(Exception):
    """A job failed, a command was refused or a result image differs."""


class Qmp:
    """A minimal QMP client: one socket, replies and events read line by line."""

    def __init__(self, name, path):
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.rfile = self.sock.makefile("rb")
        self.events = []
        greeting = self._read()
        if "QMP" not in greeting:
            raise Failure(f"{name}: no QMP greeting: {greeting}")
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.rfile.readline()
        if not line:
            raise Failure(f"{self.name}: QMP connection closed")
        return json.loads(line)

    def send(self, execute, **arguments):
        msg = {"execute": execute}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")

    def reply(self):
        """Reads up to the next reply; events that come first are kept for wait_event."""
        while True:
            msg = self._read()
            if "event" in msg:
                self.events.append(msg)
                continue
            return msg

    def cmd(self, execute, **arguments):
        self.send(execute, **arguments)
        msg = self.reply()
        if "error" in msg:
            raise Failure(f"{self.name}: {execute} {json.dumps(arguments)} -> {msg['error']}")
        return msg["return"]

    def wait_event(self, match, fail=None):
        """Returns the first event (kept or new) for which match(event) holds; removes the events up to it."""
        while True:
            for i, ev in enumerate(self.events):
                if match(ev):
                    del self.events[: i + 1]
                    if fail and fail(ev):
                        raise Failure(f"{self.name}: job failed: {json.dumps(ev)}")
                    return ev
            self.events.append(self._read())


def job_event(name, job):
    return lambda ev: ev["event"] == name and ev.get("data", {}).get("device", ev.get("data", {}).get("id")) == job


def job_end(job):
    return lambda ev: ev["event"] in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED") and ev["data"]["device"] == job


def status_change(job, status):
    return lambda ev: ev["event"] == "JOB_STATUS_CHANGE" and ev["data"] == {"id": job, "status": status}


def has_error(ev):
    return "error" in ev.get("data", {})


def cpu_seconds(pid):
    """User + system CPU seconds a process (all its threads) has used so far, from /proc; 0 when no pid is given."""
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(*argv):
    subprocess.run(argv, check=True)


class Images:
    """Creates a peer's fresh images from the shared data image (a copy through the page cache, no reflink)."""

    def __init__(self, work, size):
        self.work = work
        self.size = size

    def path(self, name):
        return os.path.join(self.work, name)

    def empty(self, name, backing=None):
        args = ["qemu-img", "create", "-q", "-f", "qcow2", "-o", CLUSTER]
        if backing:
            args += ["-b", self.path(backing), "-F", "qcow2"]
        args += [self.path(name)]
        if not backing:
            args.append(str(self.size))
        run(*args)

    def copy(self, source, name, backing=None):
        run("cp", "--reflink=never", self.path(source), self.path(name))
        if backing:
            run("qemu-img", "rebase", "-u", "-f", "qcow2", "-b", self.path(backing), "-F", "qcow2", self.path(name))

    def fsync(self, *names):
        """fsync(2) of image files (the host's page cache of them, whichever process wrote it)."""
        for name in names:
            fd = os.open(self.path(name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def remove(self, prefix):
        for f in os.listdir(self.work):
            if f.startswith(prefix):
                os.remove(self.path(f))

    def backing(self, name):
        """The backing file named in an image's header, or None."""
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", self.path(name)],
                                         check=True, capture_output=True, text=True).stdout)
        return info.get("backing-filename")

    def compare(self, raw, image):
        r = subprocess.run(["qemu-img", "compare", "-q", "-f", "raw", "-F", "qcow2", self.path(raw), self.path(image)])
        if r.returncode != 0:
            raise Failure(f"qemu-img compare {raw} {image}: guest views differ (exit {r.returncode})")


def add_chain(q, img, nodes):
    """blockdev-add bottom-up: nodes is a list of (node, file), each backed by the previous one (the first by null)."""
    below = None
    for node, f in nodes:
        q.cmd("blockdev-add", driver="qcow2", **{"node-name": node}, file={"driver": "file", "filename": img.path(f)},
              backing=below)
        below = node


def delete(q, *nodes):
    for n in nodes:
        q.cmd("blockdev-del", **{"node-name": n})


# ------------------------------------------------------------------ the operations: prepare (untimed), timed, check

def stream_prepare(img, p, data="data.qcow2"):
    img.copy(data, f"{p}-s-base.qcow2")
    img.empty(f"{p}-s-top.qcow2", backing=f"{p}-s-base.qcow2")


def stream_timed(q, img, p):
    add_chain(q, img, [("sbase", f"{p}-s-base.qcow2"), ("stop", f"{p}-s-top.qcow2")])
    t0 = time.perf_counter()
    q.cmd("block-stream", **{"job-id": "s", "device": "stop"})
    q.wait_event(job_end("s"), fail=lambda ev: has_error(ev) or ev["event"] != "BLOCK_JOB_COMPLETED")
    t = time.perf_counter() - t0
    q.wait_event(status_change("s", "null"))
    delete(q, "stop", "sbase")
    img.fsync(f"{p}-s-top.qcow2")
    return t, time.perf_counter() - t0


def stream_check(img, p, raw="data.raw"):
    # The streamed top must stand alone: no backing file in its header, and its guest view intact without the base.
    backing = img.backing(f"{p}-s-top.qcow2")
    if backing is not None:
        raise Failure(f"{p}-s-top.qcow2 still has a backing file after the stream: {backing}")
    os.remove(img.path(f"{p}-s-base.qcow2"))
    img.compare(raw, f"{p}-s-top.qcow2")


def commit_prepare(img, p):
    img.empty(f"{p}-c-base.qcow2")
    img.copy("data.qcow2", f"{p}-c-mid.qcow2", backing=f"{p}-c-base.qcow2")
    img.empty(f"{p}-c-top.qcow2", backing=f"{p}-c-mid.qcow2")


def commit_timed(q, img, p):
    add_chain(q, img, [("cbase", f"{p}-c-base.qcow2"), ("cmid", f"{p}-c-mid.qcow2"), ("ctop", f"{p}-c-top.qcow2")])
    t0 = time.perf_counter()
    q.cmd("block-commit", **{"job-id": "c", "device": "ctop", "top-node": "cmid", "base-node": "cbase"})
    q.wait_event(job_end("c"), fail=lambda ev: has_error(ev) or ev["event"] != "BLOCK_JOB_COMPLETED")
    t = time.perf_counter() - t0
    q.wait_event(status_change("c", "null"))
    delete(q, "ctop", "cmid", "cbase")
    img.fsync(f"{p}-c-base.qcow2", f"{p}-c-top.qcow2")
    return t, time.perf_counter() - t0


def commit_check(img, p):
    # The top is now backed by the base directly; its guest view and the base itself both hold the data.
    backing = img.backing(f"{p}-c-top.qcow2")
    if backing is None or os.path.basename(backing) != f"{p}-c-base.qcow2":
        raise Failure(f"{p}-c-top.qcow2 is backed by {backing} after the commit, not by {p}-c-base.qcow2")
    img.compare("data.raw", f"{p}-c-top.qcow2")
    img.compare("data.raw", f"{p}-c-base.qcow2")


def mirror_prepare(img, p):
    img.copy("data.qcow2", f"{p}-m-src.qcow2")
    img.empty(f"{p}-m-tgt.qcow2")


def mirror_timed(q, img, p):
    add_chain(q, img, [("msrc", f"{p}-m-src.qcow2")])
    add_chain(q, img, [("mtgt", f"{p}-m-tgt.qcow2")])
    t0 = time.perf_counter()
    q.cmd("blockdev-mirror", **{"job-id": "m", "device": "msrc", "target": "mtgt", "sync": "full"})
    q.wait_event(lambda ev: job_event("BLOCK_JOB_READY", "m")(ev) or job_end("m")(ev),
                 fail=lambda ev: ev["event"] != "BLOCK_JOB_READY")
    t = time.perf_counter() - t0
    # Both peers flush the target before READY: the data is on disk at the event already.
    img.fsync(f"{p}-m-tgt.qcow2")
    durable = time.perf_counter() - t0
    q.cmd("block-job-cancel", device="m")
    q.wait_event(job_end("m"), fail=has_error)
    q.wait_event(status_change("m", "null"))
    delete(q, "msrc", "mtgt")
    return t, durable


def mirror_check(img, p):
    img.compare("data.raw", f"{p}-m-tgt.qcow2")


OPERATIONS = [
    ("stream", stream_prepare, stream_timed, stream_check),
    ("commit (intermediate)", commit_prepare, commit_timed, commit_check),
    ("mirror to READY", mirror_prepare, mirror_timed, mirror_check),
]


# ------------------------------------------------------------------ latencies

def latencies(q, img, p, queries, pauses, speed):
    """A rate-limited stream keeps running while query-jobs and job-pause/job-resume are timed; then cancelled."""
    stream_prepare(img, f"{p}-l", data="lat.qcow2")
    add_chain(q, img, [("lbase", f"{p}-l-s-base.qcow2"), ("ltop", f"{p}-l-s-top.qcow2")])
    q.cmd("block-stream", **{"job-id": "l", "device": "ltop", "speed": speed})
    q.wait_event(status_change("l", "running"))
    query = []
    for _ in range(queries):
        t0 = time.perf_counter()
        q.send("query-jobs")
        msg = q.reply()
        query.append(time.perf_counter() - t0)
        if "error" in msg or not any(j["id"] == "l" and j["status"] == "running" for j in msg["return"]):
            raise Failure(f"{q.name}: query-jobs during the latency stream: {msg}")
    pause, resume = [], []
    for _ in range(pauses):
        t0 = time.perf_counter()
        q.cmd("job-pause", id="l")
        q.wait_event(status_change("l", "paused"))
        pause.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        q.cmd("job-resume", id="l")
        q.wait_event(status_change("l", "running"))
        resume.append(time.perf_counter() - t0)
    q.cmd("block-job-cancel", device="l")
    q.wait_event(job_end("l"))
    q.wait_event(status_change("l", "null"))
    delete(q, "ltop", "lbase")
    img.remove(f"{p}-l-")
    return {"query-jobs round trip": query, "job-pause -> paused": pause, "job-resume -> running": resume}


# ------------------------------------------------------------------ main

def fmt_ms(seconds):
    return f"{seconds * 1000:.3f} ms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qemu", required=True, help="QEMU's QMP socket")
    ap.add_argument("--jobcored", required=True, help="jobcored's QMP socket")
    ap.add_argument("--work", required=True, help="folder with data.raw, data.qcow2, lat.qcow2 and warm.qcow2")
    ap.add_argument("--size", required=True, type=int, help="virtual size in bytes")
    ap.add_argument("--qemu-pid", type=int, default=0, help="for the CPU seconds column")
    ap.add_argument("--jobcored-pid", type=int, default=0, help="for the CPU seconds column")
    ap.add_argument("--settle", type=float, default=0.0, help="seconds to wait after the sync before each timed job")
    ap.add_argument("--label", default="")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--pauses", type=int, default=50)
    ap.add_argument("--speed", type=int, default=1 << 20, help="bytes/s of the latency stream")
    a = ap.parse_args()

    img = Images(a.work, a.size)
    peers = {"qemu": Qmp("qemu", a.qemu), "jobcored": Qmp("jobcored", a.jobcored)}
    prefix = {"qemu": "q", "jobcored": "j"}
    pids = {"qemu": a.qemu_pid, "jobcored": a.jobcored_pid}
    times = {(op[0], peer): [] for op in OPERATIONS for peer in peers}
    durable = {(op[0], peer): [] for op in OPERATIONS for peer in peers}
    cpu = {(op[0], peer): [] for op in OPERATIONS for peer in peers}

    # Warm-up, untimed and the same for both: a small stream (jobcored's first job also pays for JIT compilation).
    for name, q in peers.items():
        p = prefix[name] + "-w"
        stream_prepare(img, p, data="warm.qcow2")
        stream_timed(q, img, p)
        stream_check(img, p, raw="warm.raw")
        img.remove(p + "-")

    flip = False
    for rnd in range(a.rounds):
        for op, prepare, timed, check in OPERATIONS:
            order = ["qemu", "jobcored"] if not flip else ["jobcored", "qemu"]
            flip = not flip
            for name in order:
                prepare(img, prefix[name])
            for name in order:
                run("sync")
                time.sleep(a.settle)
                c0 = cpu_seconds(pids[name])
                t, d = timed(peers[name], img, prefix[name])
                c = cpu_seconds(pids[name]) - c0
                times[(op, name)].append(t)
                durable[(op, name)].append(d)
                cpu[(op, name)].append(c)
                print(f"  round {rnd + 1}  {op:<22} {name:<9} {t:8.3f} s to the event {d:8.3f} s on disk"
                      f" {c:7.2f} s cpu", flush=True)
            for name in order:
                check(img, prefix[name])
                img.remove(prefix[name] + "-")

    lat = {}
    order = ["qemu", "jobcored"]
    for name in order:
        lat[name] = latencies(peers[name], img, prefix[name], a.queries, a.pauses, a.speed)

    gib = a.size / (1 << 30)
    print()
    print(f"summary {a.label}({a.rounds} interleaved rounds; ratio = QEMU / jobcored, > 1 = jobcored faster)")
    print("  on disk: from the command until the result is durable: the job's event, then the chain closed with")
    print("  blockdev-del (each peer flushes its caches) and fsync of the written images. QEMU 7.2 ends stream and")
    print("  commit without a flush, jobcored flushes before its event, so this is the like-for-like figure; both")
    print("  flush the mirror target before READY. 'to the event' is the time to BLOCK_JOB_COMPLETED / READY alone.")
    print(f"  {'operation':<22} {'':<12} {'QEMU best':>10} {'jobcored':>9} {'ratio':>6}   {'QEMU med':>9} {'jobcored':>9} {'ratio':>6}"
          f"   {'GiB/s QEMU':>10} {'jobcored':>8}")
    for op, *_ in OPERATIONS:
        for label, series in (("on disk", durable), ("to the event", times)):
            bq, bj = min(series[(op, "qemu")]), min(series[(op, "jobcored")])
            mq, mj = statistics.median(series[(op, "qemu")]), statistics.median(series[(op, "jobcored")])
            print(f"  {op if label == 'on disk' else '':<22} {label:<12} {bq:8.3f} s {bj:7.3f} s {bq / bj:6.2f}"
                  f"   {mq:7.3f} s {mj:7.3f} s {mq / mj:6.2f}   {gib / mq:10.2f} {gib / mj:8.2f}")
    print(f"  {'cpu seconds (best)':<24} {'QEMU 7.2':>10} {'jobcored':>10} {'ratio':>7}")
    for op, *_ in OPERATIONS:
        cq, cj = min(cpu[(op, "qemu")]), min(cpu[(op, "jobcored")])
        cratio = f"{cq / cj:7.2f}" if cj > 0 else "      -"
        print(f"  {op:<24} {cq:8.2f} s {cj:8.2f} s {cratio}")
    print(f"  {'latency (median)':<24} {'QEMU 7.2':>10} {'jobcored':>10} {'ratio':>7}   samples")
    for key in lat["qemu"]:
        mq, mj = statistics.median(lat["qemu"][key]), statistics.median(lat["jobcored"][key])
        print(f"  {key:<24} {fmt_ms(mq):>10} {fmt_ms(mj):>10} {mq / mj:7.2f}   {len(lat['qemu'][key])}")
    for name, q in peers.items():
        q.sock.close()
    print("all results verified with qemu-img compare (guest views equal to the data)")


if __name__ == "__main__":
    try:
        main()
    except (Failure, subprocess.CalledProcessError) as e:
        print(f"vs-qemu: {e}", file=sys.stderr)
        sys.exit(1)
