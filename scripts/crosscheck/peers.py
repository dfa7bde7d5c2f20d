"""Cross-check sockbench against other tools, cell by cell, interleaved in time.

usage: scripts/crosscheck/peers [--netperf DIR] [--neper DIR] [--lmbench DIR]
                                [--what matrix|overhead|bench|socketpair|progress|load|revision]
                                [--only CELLS] [--rounds N] [--seconds S] -o OUT_DIR

--what matrix (default): one run in which sockbench and the peers take turns
(A B ... B A per cell, --rounds rounds) on the same CPUs (server
--server-cpu, client --client-cpu):
  ping-pong, mean round trip: tcp4, udp4, uds-stream, uds-dgram, socketpair,
    pipe at 1 B, 64 B and 64 KiB, against netperf TCP_RR/UDP_RR/STREAM_RR/
    DG_RR, lmbench lat_tcp/lat_udp/lat_unix/lat_pipe, sockperf, qperf, neper
    tcp_rr/udp_rr and the lean C loop (lean_pingpong.c);
  streaming, Gbit/s: tcp4, uds-stream and socketpair at 64 B and 64 KiB
    writes, against netperf TCP_STREAM/STREAM_STREAM, iperf3, lmbench
    bw_tcp/bw_unix (sockbench tcp4 both with TCP_NODELAY, its default, and
    without, as the peers run);
  connections, transactions/s: tcp4, 1-byte request and response, against
    netperf TCP_CRR and neper tcp_crr.
--what bench: `sockbench latency` against `cargo bench` (pingpong/<t>/64, the
  mean time per iteration of criterion's measured samples), tcp4 and
  uds-stream: the two ways of running the suite agree.
--what socketpair: socketpair against uds-stream, one-way, 64 KiB and 4 KiB
  writes, in both server modes, each run its own process; and the same in
  two threads of a C program (stream_threads.c), to tell the kernel from
  sockbench.
--what progress: sockbench with its progress bar drawn on a terminal against
  sockbench with none (the display must move no number).
--what load: `sockbench load` against `sockperf under-load`, TCP and UDP, 64 B
  each way over one connection (one socket pair for UDP), every message
  answered, at 2k and 10k per
  second: the p50 round trip of each (sockbench's from the intended send,
  sockperf's from the actual one; far below saturation they should agree).
  sockperf's client is two threads (a sender spinning on the clock, a
  receiver blocked in recvfrom); `sockbench load --wait spin` (one thread,
  polling) is the closer match, sockbench's default sleeps between sends,
  and a row with sockperf's sender on the server's CPU shows how much its
  own figure moves with where its threads sit.
--what revision --other BINARY: this checkout's sockbench against another
  build of it (one made from an earlier revision, say), p50 of `connect`
  (tcp4, uds-abstract), `latency` (tcp4, uds-stream) and `load` (tcp4,
  udp4; 10k/s) at 64 B, thread mode: a change that must move no number,
  shown by paired runs.
--what overhead: sockbench's mean round trip over the lean C loop's, for
  uds-stream and tcp4 at 1, 64 and 4096 B, in both server modes; and the
  price of each difference between them, as the lean loop with it over
  the lean loop without (a thread instead of a process, send/recv,
  MSG_WAITALL, two clock reads per round trip, SO_RCVTIMEO/SO_SNDTIMEO).

Conventions are converted to sockbench's: netperf and neper report
transactions per second (RTT = 1/rate), sockperf and qperf half the round
trip (doubled here), lmbench the round trip. Every figure is a median over
rounds; ratios are medians of per-round paired ratios with 95% bootstrap
CIs (scipy). netperf (configured with --enable-unixdomain), neper and
lmbench are not Debian packages: build them from their sources outside this
repository and pass their directories; sockperf, qperf and iperf3 are
installed with apt-get when run as root. A peer that is not given is left
out, and says so. Writes OUT_DIR/README.md (command, revision, fingerprint,
tables) and OUT_DIR/raw.json (every run's figure).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from scripts import cli, resultfiles
from scripts.crosscheck.tables import (BENCH, CRR, LOAD, OVERHEAD, PING, PROGRESS, REVISION, SOCKETPAIR, STREAM,
                                        render)
from scripts.cli import Fatal
from scripts.labels import cell, size_label

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

SB = os.path.join(ROOT, "target", "release", "sockbench")


def sockbench(args, binary=None):
    """`sockbench ARGS --format json` (this checkout's build, or `binary`):
    the first case of its JSON (stdout only; its warnings go to stderr)."""
    r = subprocess.run([binary or SB, *args, "--format", "json"], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"sockbench {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[-300:]}")
    return json.loads(r.stdout)["cases"][0]


def run(cmd, env=None, timeout=120):
    """Run `cmd` in a session of its own; its stdout and stderr together
    (some peers print results on stderr). On timeout the whole session is
    killed: a peer's forked server must not outlive its run."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        p.communicate()
        raise RuntimeError(f"{' '.join(cmd)}: no result within {timeout} s")
    except BaseException:  # interrupted: the peer's session goes with us
        os.killpg(p.pid, 9)
        p.communicate()
        raise
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {out.strip()[-300:]}")
    return out


def number(pattern, text, what):
    m = re.search(pattern, text)
    if not m:
        raise RuntimeError(f"could not read {what} from: {text.strip()[-300:]}")
    return float(m.group(1))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tools:
    """How to run each tool for one cell; each returns the cell's metric in
    sockbench's convention (µs of round trip, Gbit/s, transactions/s)."""

    def __init__(self, a, tmp):
        self.a, self.tmp = a, tmp
        self.s, self.c = str(a.server_cpu), str(a.client_cpu)
        self.tmp = tmp
        self.secs = a.seconds
        self.lean = os.path.join(tmp, "lean_pingpong")
        subprocess.run(["gcc", "-O2", "-pthread", "-o", self.lean, os.path.join(HERE, "lean_pingpong.c")], check=True)
        self.threads = os.path.join(tmp, "stream_threads")
        subprocess.run(["gcc", "-O2", "-pthread", "-o", self.threads, os.path.join(HERE, "stream_threads.c")],
                       check=True)
        self.daemons = []
        self.netperf_port = None

    def close(self):
        for p in self.daemons:
            p.kill()
            p.wait()

    def daemon(self, cmd):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.daemons.append(p)
        time.sleep(0.4)
        return p

    def stop(self, p):
        p.kill()
        p.wait()
        self.daemons.remove(p)

    # sockbench
    def sockbench_rtt(self, transport, size, mode="process"):
        return sockbench(["latency", "-t", transport, "-s", str(size), "-d", f"{self.secs}s", "--trials", "1",
                          "--mode", mode, "--server-cpu", self.s, "--client-cpu", self.c])["mean_ns"] / 1e3

    def sockbench_rtt_shown(self, transport, size):
        """`sockbench latency` with its progress bar drawn on a terminal (a
        pseudo-terminal from `script`); the result read from its --out."""
        out = os.path.join(self.tmp, f"shown-{time.monotonic_ns()}")
        cmd = " ".join([SB, "latency", "-t", transport, "-s", str(size), "-d", f"{self.secs}s", "--trials", "1",
                        "--server-cpu", self.s, "--client-cpu", self.c, "-q", "--out", out])
        run(["script", "-qc", cmd, "/dev/null"])
        with open(os.path.join(out, "summary.json")) as f:
            mean = json.load(f)["cases"][0]["mean_ns"] / 1e3
        shutil.rmtree(out)
        return mean

    def sockbench_gbit(self, transport, size, nodelay="on"):
        return sockbench(["throughput", "-t", transport, "-s", str(size), "-d", f"{self.secs}s", "--trials", "1",
                          "--mode", "process", "--nodelay", nodelay, "--server-cpu", self.s,
                          "--client-cpu", self.c])["gbit_per_s"]

    def sockbench_crr(self, size):
        return sockbench(["connect", "-t", "tcp4", "--request-size", str(size), "--response-size", str(size),
                          "-d", f"{self.secs}s", "--trials", "1", "--mode", "process", "--server-cpu", self.s,
                          "--client-cpu", self.c])["ops_per_s"]

    def sockbench_p50(self, workload, transport, size, binary=None):
        """The p50 in µs of a one-trial `latency`, `connect` or `load` run
        (thread mode; `load` at 10k requests/s over 16 connections)."""
        sizes = ["-s", str(size)] if workload == "latency" else \
            ["--request-size", str(size), "--response-size", str(size)]
        rate = ["--rate", "10k"] if workload == "load" else []
        return sockbench([workload, "-t", transport, *sizes, *rate, "-d", f"{self.secs}s", "--trials", "1",
                          "--server-cpu", self.s, "--client-cpu", self.c], binary)["p50_ns"] / 1e3

    # two threads of one C process, one-way
    def threads_gbit(self, transport, size):
        out = run([self.threads, transport, str(size), str(self.secs), self.s, self.c])
        return float(out.split()[0])

    def sockbench_gbit_mode(self, transport, size, mode):
        return sockbench(["throughput", "-t", transport, "-s", str(size), "-d", f"{self.secs}s", "--trials", "1",
                          "--mode", mode, "--server-cpu", self.s, "--client-cpu", self.c])["gbit_per_s"]

    # the lean C loop
    def lean_rtt(self, transport, size, *variants):
        out = run([self.lean, transport, str(size), str(self.secs), self.s, self.c, *variants])
        return float(out.split()[0]) / 1e3

    # netperf: transactions/s, or 10^6 bits/s
    def netperf(self, test, extra):
        if self.netperf_port is None:
            self.netperf_port = str(free_port())
            self.daemon([os.path.join(self.a.netperf, "netserver"), "-D", "-p", self.netperf_port])
        out = run([os.path.join(self.a.netperf, "netperf"), "-H", "127.0.0.1", "-p", self.netperf_port,
                   "-l", str(max(1, round(self.secs))), "-T", f"{self.c},{self.s}", "-P", "0", "-t", test,
                   "--", *extra])
        return float(out.strip().splitlines()[0].split()[-1])

    def netperf_rtt(self, test, size, *extra):
        return 1e6 / self.netperf(test, ["-r", f"{size},{size}", *extra])

    def netperf_gbit(self, test, size, *extra):
        return self.netperf(test, ["-m", str(size), *extra]) / 1e3

    # neper: transactions/s
    def neper(self, prog, size):
        exe = os.path.join(self.a.neper, prog)
        secs = str(max(1, round(self.secs)))
        # --nolog: neper would otherwise leave a log file in the working directory
        srv = self.daemon(["taskset", "-c", self.s, exe, "--nolog", "-l", str(int(secs) + 3),
                           "-Q", str(size), "-R", str(size)])
        try:
            out = run(["taskset", "-c", self.c, exe, "--nolog", "-c", "-H", "127.0.0.1", "-l", secs,
                       "-Q", str(size), "-R", str(size)])
        finally:
            self.stop(srv)
        return number(r"\nthroughput=([0-9.]+)", "\n" + out, f"neper {prog}'s throughput")

    def neper_rtt(self, prog, size):
        return 1e6 / self.neper(prog, size)

    # lmbench: round trip in µs, bandwidth in MB/s (10^6)
    def lmbench_pair(self, prog, args, host=True):
        exe = os.path.join(self.a.lmbench, prog)
        if host:
            self.daemon(["taskset", "-c", self.s, exe, "-s"])
            try:
                return run(["taskset", "-c", self.c, exe, *args, "127.0.0.1"])
            finally:
                subprocess.run([exe, "-S", "127.0.0.1"], capture_output=True)
                self.daemons.pop().wait()
        # one program that forks its server: lmbench's own placement, client then server
        env = dict(os.environ, LMBENCH_SCHED=f"CUSTOM_UNIQUE {self.c} {self.s}")
        return run([exe, *args], env=env)

    def lmbench_rtt(self, prog, size):
        host = prog in ("lat_tcp", "lat_udp")
        args = [] if prog == "lat_pipe" else ["-m", str(size)]
        return number(r"([0-9.]+) microseconds", self.lmbench_pair(prog, args, host), f"lmbench {prog}")

    def lmbench_gbit(self, prog, size):
        # -N 1: one repetition (of 10 MB for bw_unix), a few seconds, not a minute
        out = self.lmbench_pair(prog, ["-m", str(size), "-N", "1"], host=prog == "bw_tcp")
        # "0.065536 1234.56 MB/sec" (bw_tcp) or "1234.56 MB/sec"-like lines: the figure before MB/sec
        return number(r"([0-9.]+)\s*MB/sec", out, f"lmbench {prog}") * 8 / 1e3

    # sockperf and qperf: half the round trip
    def sockperf_rtt(self, proto, size):
        port = str(free_port())
        flag = ["--tcp"] if proto == "tcp" else []
        srv = self.daemon(["taskset", "-c", self.s, "sockperf", "sr", *flag, "-i", "127.0.0.1", "-p", port])
        try:
            out = run(["taskset", "-c", self.c, "sockperf", "pp", *flag, "-i", "127.0.0.1", "-p", port,
                       "-m", str(size), "-t", str(max(1, round(self.secs)))])
        finally:
            self.stop(srv)
        return 2 * number(r"avg-latency=([0-9.]+)", out, "sockperf's avg-latency")

    def sockbench_load_p50(self, size, rate, wait, transport="tcp4"):
        """`sockbench load` over one connection (tcp4) or one connected UDP
        socket pair (udp4): p50 round trip from the intended send, µs;
        `wait`: how its load generator waits between sends."""
        return sockbench(["load", "-t", transport, "--rate", str(rate), "--connections", "1", "--request-size",
                          str(size), "--response-size", str(size), "-d", f"{self.secs}s", "--trials", "1",
                          "--mode", "process", "--wait", wait, "--server-cpu", self.s,
                          "--client-cpu", self.c])["p50_ns"] / 1e3

    def sockperf_ul_p50(self, size, rate, sender_apart=False, transport="tcp4"):
        """`sockperf under-load` over TCP (or UDP) at `rate` messages/s, every one
        answered (`--reply-every 1`), round trips (`--full-rtt`): its p50, µs.
        Its client is two threads, a sender spinning on the clock and a
        receiver blocked in recvfrom; `sender_apart` puts the sender on the
        server's CPU and lets the receiver have the client's to itself."""
        port = str(free_port())
        proto = ["--tcp"] if transport == "tcp4" else []  # sockperf's default is UDP
        srv = self.daemon(["taskset", "-c", self.s, "sockperf", "sr", *proto, "-i", "127.0.0.1", "-p", port])
        cpus, extra = (f"{self.s},{self.c}", ["--sender-affinity", self.s]) if sender_apart else (self.c, [])
        try:
            out = run(["taskset", "-c", cpus, "sockperf", "ul", *proto, "-i", "127.0.0.1", "-p", port,
                       "-m", str(size), "--mps", str(rate), "--reply-every", "1", "--full-rtt",
                       "-t", str(max(1, round(self.secs))), *extra])
        finally:
            self.stop(srv)
        return number(r"percentile 50\.000 =\s*([0-9.]+)", out, "sockperf's p50")

    def qperf_rtt(self, test, size):
        port = str(free_port())
        srv = self.daemon(["taskset", "-c", self.s, "qperf", "--listen_port", port])
        try:
            # qperf numbers CPUs from 1 (-lca 1 is CPU 0)
            out = run(["qperf", "127.0.0.1", "--listen_port", port, "-lca", str(int(self.c) + 1),
                       "-rca", str(int(self.s) + 1),
                       "-m", str(size), "-t", str(max(1, round(self.secs))), test])
        finally:
            self.stop(srv)
        value = number(r"latency\s*=\s*([0-9.]+)", out, f"qperf {test}")
        unit = re.search(r"latency\s*=\s*[0-9.]+\s*(\w+)", out).group(1)
        return 2 * value * {"ns": 1e-3, "us": 1.0, "ms": 1e3}[unit]

    def iperf3_gbit(self, size):
        port = str(free_port())
        srv = self.daemon(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", port, "-A", self.s])
        try:
            out = run(["iperf3", "-c", "127.0.0.1", "-p", port, "-l", str(size), "-t",
                       str(max(1, round(self.secs))), "-A", self.c, "-J"])
        finally:
            srv.wait(timeout=10)
            self.daemons.remove(srv)
        return json.loads(out[out.index("{"):])["end"]["sum_received"]["bits_per_second"] / 1e9


def ping_cells(t, a):
    """(transport, size) → [(tool name, thunk)] for the ping-pong matrix."""
    cells = []
    for transport in ["tcp4", "udp4", "uds-stream", "uds-dgram", "socketpair", "pipe"]:
        for size in [1, 64, 65536]:
            if transport == "udp4" and size > 65507:
                continue  # UDP carries at most 65,507 B
            tools = [("sockbench", lambda tr=transport, s=size: t.sockbench_rtt(tr, s)),
                     ("sockbench (thread)", lambda tr=transport, s=size: t.sockbench_rtt(tr, s, "thread"))]
            if transport in ("tcp4", "uds-stream"):
                tools.append(("lean C loop", lambda tr=transport, s=size: t.lean_rtt(tr, s)))
                if size > 4096:  # one recv per message, as sockbench's blocking streams
                    tools.append(("lean C loop + MSG_WAITALL",
                                  lambda tr=transport, s=size: t.lean_rtt(tr, s, "waitall")))
            nt = {"tcp4": "TCP_RR", "udp4": "UDP_RR", "uds-stream": "STREAM_RR", "uds-dgram": "DG_RR"}.get(transport)
            if a.netperf and nt and not (transport == "uds-dgram" and size > 65536 - 1024):
                tools.append((f"netperf {nt}", lambda n=nt, s=size: t.netperf_rtt(n, s)))
                if transport == "uds-stream" and size > 4096:  # netserver's small buffers
                    tools.append((f"netperf {nt} -s 212992 -S 212992",
                                  lambda n=nt, s=size: t.netperf_rtt(n, s, "-s", "212992", "-S", "212992")))
            lm = {"tcp4": "lat_tcp", "udp4": "lat_udp", "socketpair": "lat_unix", "pipe": "lat_pipe"}.get(transport)
            # lat_pipe moves one word; lat_udp needs 4 B or more (it carries a
            # sequence number); lat_tcp and lat_unix make one read per message,
            # so they are ping-pongs only while a message arrives whole (see NOTES)
            lm_ok = {"lat_pipe": size == 1, "lat_udp": size >= 4}.get(lm, size <= 4096)
            if a.lmbench and lm and lm_ok:
                tools.append((f"lmbench {lm}", lambda p=lm, s=size: t.lmbench_rtt(p, s)))
            if transport in ("tcp4", "udp4") and 14 <= size <= 65000:
                proto = transport[:3]
                tools.append(("sockperf", lambda p=proto, s=size: t.sockperf_rtt(p, s)))
            if transport in ("tcp4", "udp4"):
                tools.append(("qperf", lambda q=transport[:3] + "_lat", s=size: t.qperf_rtt(q, s)))
                if a.neper:
                    tools.append((f"neper {transport[:3]}_rr", lambda p=transport[:3] + "_rr", s=size: t.neper_rtt(p, s)))
            cells.append(((transport, size), tools))
    return cells


def stream_cells(t, a):
    cells = []
    for transport in ["tcp4", "uds-stream", "socketpair"]:
        for size in [64, 65536]:
            tools = [("sockbench", lambda tr=transport, s=size: t.sockbench_gbit(tr, s))]
            if transport == "tcp4":
                tools.append(("sockbench --nodelay off", lambda s=size: t.sockbench_gbit("tcp4", s, "off")))
                if a.netperf:
                    tools.append(("netperf TCP_STREAM", lambda s=size: t.netperf_gbit("TCP_STREAM", s)))
                tools.append(("iperf3", lambda s=size: t.iperf3_gbit(s)))
                if a.lmbench:
                    tools.append(("lmbench bw_tcp", lambda s=size: t.lmbench_gbit("bw_tcp", s)))
            if transport == "uds-stream" and a.netperf:
                tools.append(("netperf STREAM_STREAM", lambda s=size: t.netperf_gbit("STREAM_STREAM", s)))
                tools.append(("netperf STREAM_STREAM -S 212992",
                              lambda s=size: t.netperf_gbit("STREAM_STREAM", s, "-S", "212992")))
            if transport == "socketpair" and a.lmbench:
                tools.append(("lmbench bw_unix", lambda s=size: t.lmbench_gbit("bw_unix", s)))
            cells.append(((transport, size), tools))
    return cells


def crr_cells(t, a):
    tools = [("sockbench", lambda: t.sockbench_crr(1))]
    if a.netperf:
        tools.append(("netperf TCP_CRR", lambda: 1e6 / t.netperf_rtt("TCP_CRR", 1)))
    if a.neper:
        tools.append(("neper tcp_crr", lambda: t.neper("tcp_crr", 1)))
    return [(("tcp4", 1), tools)]


def criterion_mean(t, transport, home):
    """`cargo bench` of pingpong/<transport>/64: mean time per iteration
    from criterion's raw.csv (its measured samples), µs."""
    env = dict(os.environ, CRITERION_HOME=home, SOCKBENCH_SERVER_CPU=t.s, SOCKBENCH_CLIENT_CPU=t.c)
    subprocess.run(["cargo", "bench", "--quiet", "--bench", "latency", "--", f"pingpong/{transport}/64$",
                    "--noplot", "--save-baseline", "peers"], cwd=ROOT, env=env, check=True, capture_output=True)
    _, _, total, iters = resultfiles.read_raw_csv(os.path.join(home, "pingpong", transport, "64", "new", "raw.csv"))
    return total / iters / 1e3


def bench_cells(t, a, home):
    """`sockbench latency` (thread mode, as cargo bench) against `cargo bench`, 64 B."""
    return [((transport, 64), [
        ("sockbench (thread)", lambda tr=transport: t.sockbench_rtt(tr, 64, "thread")),
        ("cargo bench", lambda tr=transport: criterion_mean(t, tr, home)),
    ]) for transport in ["tcp4", "uds-stream"]]


def socketpair_cells(t, a):
    """socketpair against uds-stream, one-way, in each server mode, every run
    its own process; and the same two in two threads of a C program."""
    cells = []
    for size in [65536, 4096]:
        for mode in ["thread", "process"]:
            cells.append(((f"{mode} mode", size), [
                ("sockbench uds-stream", lambda s=size, m=mode: t.sockbench_gbit_mode("uds-stream", s, m)),
                ("sockbench socketpair", lambda s=size, m=mode: t.sockbench_gbit_mode("socketpair", s, m)),
            ]))
        cells.append((("C, two threads", size), [
            ("stream_threads.c uds-stream", lambda s=size: t.threads_gbit("uds-stream", s)),
            ("stream_threads.c socketpair", lambda s=size: t.threads_gbit("socketpair", s)),
        ]))
        if a.lmbench:
            cells[-1][1].append(("lmbench bw_unix (socketpair, two processes)", lambda s=size: t.lmbench_gbit("bw_unix", s)))
    return cells


def load_cells(t, a):
    """`sockbench load` against `sockperf under-load`, TCP (one connection)
    and UDP (one socket pair), every message answered, at rates far below
    saturation."""
    return [((f"{tr} at {rate // 1000}k/s", 64), [
        ("sockperf under-load", lambda r=rate, tr=tr: t.sockperf_ul_p50(64, r, transport=tr)),
        ("sockperf under-load, its sender on the server's CPU",
         lambda r=rate, tr=tr: t.sockperf_ul_p50(64, r, True, transport=tr)),
        ("sockbench load --wait spin", lambda r=rate, tr=tr: t.sockbench_load_p50(64, r, "spin", tr)),
        ("sockbench load (sleeping between sends)", lambda r=rate, tr=tr: t.sockbench_load_p50(64, r, "block", tr)),
    ]) for tr in ("tcp4", "udp4") for rate in (2000, 10000)]


def progress_cells(t, a):
    """sockbench with its progress bar drawn (on a pseudo-terminal) against
    sockbench with none: the display must move no number."""
    return [((transport, 64), [
        ("sockbench --progress never", lambda tr=transport: t.sockbench_rtt(tr, 64, "thread")),
        ("sockbench, bar drawn on a terminal", lambda tr=transport: t.sockbench_rtt_shown(tr, 64)),
    ]) for transport in ["uds-stream", "tcp4"]]


def revision_cells(t, a):
    """This checkout's sockbench against another build of it (`--other`):
    a change that must move no number, shown by paired runs."""
    other = os.path.abspath(a.other)
    return [((f"{w} {transport}", 64), [
        ("sockbench (this revision)", lambda w=w, tr=transport: t.sockbench_p50(w, tr, 64)),
        ("sockbench (--other)", lambda w=w, tr=transport: t.sockbench_p50(w, tr, 64, other)),
    ]) for w, transport in (("connect", "tcp4"), ("connect", "uds-abstract"), ("latency", "tcp4"),
                            ("latency", "uds-stream"), ("load", "tcp4"), ("load", "udp4"))]


def overhead_cells(t, a):
    """sockbench over the lean loop; and each difference's price, on the lean loop."""
    cells = []
    for transport in ["uds-stream", "tcp4"]:
        for size in [1, 64, 4096]:
            cells.append(((transport, size), [
                ("lean C loop", lambda tr=transport, s=size: t.lean_rtt(tr, s)),
                ("sockbench (process)", lambda tr=transport, s=size: t.sockbench_rtt(tr, s, "process")),
                ("sockbench (thread)", lambda tr=transport, s=size: t.sockbench_rtt(tr, s, "thread")),
            ]))
    for transport in ["uds-stream", "tcp4"]:
        variants = [("lean C loop", ())] + [(f"lean + {v}", (v,)) for v in
                                            ("thread", "sendrecv", "waitall", "clock", "timeo")]
        cells.append(((transport + " (lean loop variants)", 64), [
            (name, lambda tr=transport, v=v: t.lean_rtt(tr, 64, *v)) for name, v in variants]))
    return cells


def measure(cells, rounds):
    """Every tool of a cell once per round, A B ... B A, rounds one after
    another (cells take turns within a round): {cell: {tool: [values]}}."""
    res = {key: {name: [] for name, _ in tools} for key, tools in cells}
    for r in range(rounds):
        for key, tools in cells:
            order = tools if r % 2 == 0 else list(reversed(tools))
            for name, fn in order:
                try:
                    v = fn()
                except (RuntimeError, Fatal, subprocess.SubprocessError, OSError, ValueError, KeyError) as e:
                    print(f"warning: {key} {name}: {e}", file=sys.stderr)
                    v = None
                res[key][name].append(v)
                print(f"round {r + 1}/{rounds} {key[0]} {size_label(key[1])} {name}: {v}", file=sys.stderr, flush=True)
    return res


def overhead_defaults(a, argv):
    """--what overhead runs 30 rounds of 0.5 s unless told otherwise."""
    if a.what == "overhead" and "--rounds" not in argv:
        a.rounds, a.seconds = 30, 0.5


def fingerprint():
    return json.loads(run([SB, "env"]))


def main():
    p = cli.parser("scripts/crosscheck/peers", __doc__)
    p.add_argument("--what", choices=["matrix", "overhead", "bench", "socketpair", "progress", "load",
                                      "revision"], default="matrix")
    p.add_argument("--other", help="--what revision: another sockbench binary (e.g. built from an earlier revision)")
    p.add_argument("--only", help="matrix: only these cells, comma-separated as `transport size` (tcp4 65536)")
    p.add_argument("--netperf", help="directory holding netperf and netserver (built with --enable-unixdomain)")
    p.add_argument("--neper", help="directory holding neper's tcp_rr, udp_rr and tcp_crr")
    p.add_argument("--lmbench", help="directory holding lmbench's lat_tcp, lat_udp, lat_unix, lat_pipe, bw_tcp, bw_unix")
    p.add_argument("--rounds", type=int, default=6, help="rounds (default 6; --what overhead: 30)")
    p.add_argument("--seconds", type=float, default=1.0, help="length of each run (default 1; overhead: 0.5)")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("-o", "--output", required=True, help="new directory for README.md and raw.json")
    p.add_argument("--from", dest="from_raw", metavar="RAW_JSON",
                   help="re-render the tables of an earlier run's raw.json into -o (nothing is measured)")
    a = p.parse_args()
    overhead_defaults(a, sys.argv[1:])
    cli.interrupt_on_signals()
    try:
        if os.path.exists(a.output) and os.listdir(a.output) and not a.from_raw:
            raise Fatal(f"-o {a.output}: exists and is not empty; name a new directory")
        if a.what == "revision" and not (a.other and os.access(a.other, os.X_OK)):
            raise Fatal(f"--other {a.other}: --what revision needs another sockbench binary to run")
        for flag in ("netperf", "neper", "lmbench"):
            d = getattr(a, flag)
            if d and not os.path.isdir(d):
                raise Fatal(f"--{flag} {d}: not a directory")
        for tool, pkg in (("gcc", "gcc"), ("taskset", "util-linux")) + (
                (("sockperf", "sockperf"), ("qperf", "qperf"), ("iperf3", "iperf3")) if a.what == "matrix" else
                (("sockperf", "sockperf"),) if a.what == "load" else ()):
            if not shutil.which(tool):
                if os.geteuid() == 0 and shutil.which("apt-get"):
                    print(f"installing {pkg} (Debian package, with apt-get)", file=sys.stderr)
                    subprocess.run(["apt-get", "install", "-y", "-qq", pkg], check=True, stdout=subprocess.DEVNULL)
                if not shutil.which(tool):
                    raise Fatal(f"'{tool}' is missing: install the Debian package '{pkg}'")
        if a.from_raw:
            with open(a.from_raw) as f:
                raw = json.load(f)
            sections = [(title, {(k.rsplit(" ", 1)[0], int(k.rsplit(" ", 1)[1])): v for k, v in cells.items()})
                        for title, cells in raw["results"].items()]
            command = raw.get("command") or sys.argv[1:]
            first = p.parse_args(command)  # the rounds, lengths, CPUs and peers the run had
            overhead_defaults(first, command)
            first.output = a.output
            render(first, command, raw["env"], raw.get("wall_s", 0), sections)
            return
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        tmp = tempfile.mkdtemp(prefix="sockbench-peers-")
        tools = None
        started = time.time()
        try:
            tools = Tools(a, tmp)
            if a.what == "overhead":
                sections = [(OVERHEAD, measure(overhead_cells(tools, a), a.rounds))]
            elif a.what == "progress":
                sections = [(PROGRESS, measure(progress_cells(tools, a), a.rounds))]
            elif a.what == "revision":
                sections = [(REVISION, measure(revision_cells(tools, a), a.rounds))]
            elif a.what == "load":
                sections = [(LOAD, measure(load_cells(tools, a), a.rounds))]
            elif a.what == "socketpair":
                sections = [(SOCKETPAIR, measure(socketpair_cells(tools, a), a.rounds))]
            elif a.what == "bench":
                subprocess.run(["cargo", "bench", "--no-run", "--quiet", "--bench", "latency"], cwd=ROOT, check=True,
                               capture_output=True)
                sections = [(BENCH, measure(bench_cells(tools, a, tmp), a.rounds))]
            else:
                only = {c.strip() for c in a.only.split(",")} if a.only else None
                pick = lambda cells: [c for c in cells if only is None or f"{c[0][0]} {c[0][1]}" in only]  # noqa: E731
                sections = [(title, measure(cells, a.rounds)) for title, cells in
                            ((PING, pick(ping_cells(tools, a))), (STREAM, pick(stream_cells(tools, a))),
                             (CRR, pick(crr_cells(tools, a)))) if cells]
        finally:
            if tools:
                tools.close()
            shutil.rmtree(tmp, ignore_errors=True)
        render(a, sys.argv[1:], fingerprint(), time.time() - started, sections)
    except Fatal as e:
        cli.fatal(str(e))
    except KeyboardInterrupt:
        print("interrupted: stopped the peers, removed the build directory, wrote nothing", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
