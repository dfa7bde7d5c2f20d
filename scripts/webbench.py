"""nginx in front of gunicorn: the seed's deployment, over loopback TCP and
over a Unix socket, with and without upstream keepalive.

usage: scripts/webbench --out DIR [--duration S] [--rounds N]
                        [--connections C] [--body 1K,16K] [--work-us 0,100,1000] [--smoke]

Starts, on 127.0.0.1 only and inside a fresh private (0700) directory:
- one minimal WSGI application (app.py next to this script) under two
  gunicorn masters (1 gthread worker, 4 threads), one bound to
  127.0.0.1:<port>, one to unix:<dir>/gunicorn.sock, both pinned to the
  server CPU;
- one nginx (1 worker, pinned to the client CPU) with four listeners, one
  per variant: tcp/uds × upstream keepalive off/on;
- wrk (1 thread, C connections, pinned to the client CPU) against each
  listener in turn, A B B A order, `--rounds` rounds per cell.
Every cell is (response body size, application work per request). The
application burns `work_us` µs of CPU per request to show how the transport's
share shrinks as the application does more.

Writes DIR/summary.json in sockbench's schema (workload
"http-<keepalive>-app<work>us", transport tcp4 or uds-stream, size = body),
so scripts/report reads it with the same figures and colours; plus
DIR/README.md with the command and the table, and DIR/env.json. Stops every
process it started and removes its directory on every exit path, Ctrl-C
included; DIR is written complete or not at all.
"""
import argparse
import getpass
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from scripts import cli, stats, webtable
from scripts.cli import fatal
from scripts.labels import size_label

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

VARIANTS = [  # (name, transport, keepalive)
    ("tcp", "tcp4", False),
    ("uds", "uds-stream", False),
    ("tcp-ka", "tcp4", True),
    ("uds-ka", "uds-stream", True),
]
LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'SOCKBENCH_WRK {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"mean_us":%f,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
end
"""


def parse_sizes(text, flag):
    out = []
    for part in text.split(","):
        m = re.fullmatch(r"(\d+)([KM]?)", part.strip())
        if not m:
            fatal(f"{flag} {part!r}: a size like 128, 1K or 16K expected", 2)
        n = int(m.group(1)) << {"": 0, "K": 10, "M": 20}[m.group(2)]
        if not 1 <= n <= 1 << 20:
            fatal(f"{flag} {part!r}: 1 B to 1M allowed", 2)
        out.append(n)
    if len(set(out)) != len(out):
        fatal(f"{flag} {text!r}: a value appears twice", 2)
    return out


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_connect(port):
    return lambda: socket.create_connection(("127.0.0.1", port), timeout=1)


def unix_connect(path):
    def c():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(path)
        return s
    return c


class Stack:
    """The processes and the private directory of one benchmark; stopped
    and removed by close(), whatever happened."""

    def __init__(self, args):
        self.procs = []
        self.dir = tempfile.mkdtemp(prefix="sockbench-web-")  # 0700
        os.chmod(self.dir, 0o700)
        self.args = args

    def spawn(self, name, argv, cpu):
        log = open(os.path.join(self.dir, name + ".log"), "w")
        p = subprocess.Popen(["taskset", "-c", str(cpu)] + argv, stdout=log, stderr=subprocess.STDOUT,
                             cwd=self.dir, start_new_session=True)
        self.procs.append((p, name))
        return p

    def start(self):
        a, d = self.args, self.dir
        shutil.copy(os.path.join(HERE, "webapp.py"), d)
        self.gport, self.sock = free_port(), os.path.join(d, "gunicorn.sock")
        gunicorn = [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "gthread",
                    "--threads", "4", "--keep-alive", "5", "--backlog", "1024", "--chdir", d, "webapp:app"]
        self.spawn("gunicorn-tcp", gunicorn + ["--bind", f"127.0.0.1:{self.gport}"], a.server_cpu)
        self.spawn("gunicorn-uds", gunicorn + ["--bind", f"unix:{self.sock}"], a.server_cpu)
        self.wait_ready(tcp_connect(self.gport), "gunicorn on TCP")
        self.wait_ready(unix_connect(self.sock), "gunicorn on the Unix socket")
        self.ports = {name: free_port() for name, _, _ in VARIANTS}
        upstream = {"tcp4": f"127.0.0.1:{self.gport}", "uds-stream": f"unix:{self.sock}"}
        conf = [f"user {getpass.getuser()};" if os.geteuid() == 0 else "",
                "worker_processes 1;", "daemon off;", f"pid {d}/nginx.pid;", f"error_log {d}/nginx-error.log warn;",
                "events { worker_connections 4096; }", "http {", "  access_log off;",
                *(f"  {k}_temp_path {d}/{k}_temp;" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))]
        for name, transport, ka in VARIANTS:
            conf += [f"  upstream {name.replace('-', '_')} {{", f"    server {upstream[transport]};",
                     "    keepalive 32;" if ka else "", "  }",
                     f"  server {{ listen 127.0.0.1:{self.ports[name]}; location / {{",
                     f"    proxy_pass http://{name.replace('-', '_')};",
                     '    proxy_http_version 1.1; proxy_set_header Connection "";' if ka else "",
                     "  } }"]
        conf.append("}")
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write("\n".join(conf) + "\n")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.spawn("nginx", [nginx, "-p", d, "-c", os.path.join(d, "nginx.conf")], a.client_cpu)
        for name, _, _ in VARIANTS:
            self.wait_ready(tcp_connect(self.ports[name]), f"nginx listener {name}")
        with open(os.path.join(d, "report.lua"), "w") as f:
            f.write(LUA)

    def wait_ready(self, connect, what, limit=15.0):
        """Until `connect()` succeeds; a process that exits meanwhile is an
        error quoting the last line of its log."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                connect().close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{what} did not come up within {limit:.0f} s")

    def check_alive(self):
        for p, name in self.procs:
            if p.poll() is not None:
                log = os.path.join(self.dir, name + ".log")
                tail = open(log).read().strip().splitlines()[-1:] if os.path.exists(log) else []
                raise RuntimeError(f"{name} exited with status {p.returncode}: {' '.join(tail)}")

    def wrk(self, name, body, work_us, seconds):
        url = f"http://127.0.0.1:{self.ports[name]}/?size={body}&work_us={work_us}"
        argv = ["taskset", "-c", str(self.args.client_cpu), "wrk", "-t1", f"-c{self.args.connections}",
                f"-d{seconds}s", "--timeout", "5s", "-s", os.path.join(self.dir, "report.lua"), url]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
        line = next((x for x in out.stdout.splitlines() if x.startswith("SOCKBENCH_WRK ")), None)
        if out.returncode != 0 or line is None:
            raise RuntimeError(f"wrk against {name} failed (status {out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
        r = json.loads(line.split(" ", 1)[1])
        if r["errors"] or r["non2xx"]:
            raise RuntimeError(f"{name}: {r['errors']} socket errors and {r['non2xx']} non-2xx responses in {url}")
        self.check_alive()
        return r

    def close(self):
        for p, _ in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for p, _ in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def measure(stack, args):
    """All cells, A B B A within each; returns {(variant, body, work): [per-round wrk dicts]}."""
    cells = [(b, w) for b in args.body for w in args.work_us]
    per_cell = args.rounds * len(VARIANTS) * args.duration + len(VARIANTS)
    print(f"{len(cells)} cells × {args.rounds} rounds × {len(VARIANTS)} variants × {args.duration} s: "
          f"about {len(cells) * per_cell / 60:.1f} min", file=sys.stderr)
    out = {}
    for body, work in cells:
        for name, _, _ in VARIANTS:  # warm-up: connections, caches, gunicorn threads
            stack.wrk(name, body, work, 1)
        for r in range(args.rounds):
            order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
            for name, _, _ in order:
                res = stack.wrk(name, body, work, args.duration)
                res["round"] = r
                out.setdefault((name, body, work), []).append(res)
    return out


def summarize(raw, args):
    cases, ratios = [], []
    for (name, body, work), rounds in sorted(raw.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        _, transport, ka = next(v for v in VARIANTS if v[0] == name)
        p50 = [r["p50_us"] * 1e3 for r in rounds]
        _, lo, hi = stats.median_ci(p50)
        rps = [r["requests"] / (r["duration_us"] / 1e6) for r in rounds]
        cases.append({
            "workload": f"http-{'keepalive' if ka else 'close'}-app{work}us", "transport": transport,
            "size_bytes": body, "response_bytes": body, "depth": args.connections, "pairs": 1,
            "variant": name, "upstream_keepalive": ka, "app_work_us": work, "connections": args.connections,
            "p50_ns": statistics.median(p50), "p50_ci_low_ns": lo, "p50_ci_high_ns": hi,
            "p90_ns": statistics.median(r["p90_us"] * 1e3 for r in rounds),
            "p99_ns": statistics.median(r["p99_us"] * 1e3 for r in rounds),
            "p999_ns": statistics.median(r["p999_us"] * 1e3 for r in rounds),
            "mean_ns": statistics.median(r["mean_us"] * 1e3 for r in rounds),
            "max_ns": max(r["max_us"] * 1e3 for r in rounds),
            "ops_per_s": statistics.median(rps), "requests": sum(r["requests"] for r in rounds),
            "trials": len(rounds),
            "trial_points": [{"round": r["round"], "p50_ns": r["p50_us"] * 1e3, "p99_ns": r["p99_us"] * 1e3,
                              "mean_ns": r["mean_us"] * 1e3, "ops_per_s": x} for r, x in zip(rounds, rps)],
        })
    by = {(c["variant"], c["size_bytes"], c["app_work_us"]): c for c in cases}
    for body in args.body:
        for work in args.work_us:
            for ka in (False, True):
                t = by[("tcp-ka" if ka else "tcp", body, work)]
                u = by[("uds-ka" if ka else "uds", body, work)]
                for metric, get in (("p50", lambda p: p["p50_ns"]), ("ops_per_s", lambda p: p["ops_per_s"])):
                    tp = {p["round"]: get(p) for p in t["trial_points"]}
                    paired = [get(p) / tp[p["round"]] for p in u["trial_points"] if tp.get(p["round"])]
                    _, lo, hi = stats.median_ci(paired)
                    ratios.append({"workload": t["workload"], "size_bytes": body, "response_bytes": body,
                                   "numerator": "uds-stream", "denominator": "tcp4", "metric": metric,
                                   "ratio": statistics.median(paired), "ci_low": lo, "ci_high": hi,
                                   "rounds": len(paired)})
    return cases, ratios


def fingerprint():
    """sockbench's own environment fingerprint (`sockbench env`), if built."""
    exe = os.path.join(ROOT, "target", "release", "sockbench")
    if not os.path.exists(exe):
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    return json.loads(subprocess.run([exe, "env"], capture_output=True, text=True, check=True).stdout)


def main():
    p = cli.parser("scripts/webbench", __doc__)
    p.add_argument("--out", required=True, help="new directory for summary.json, env.json, README.md")
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    p.add_argument("--rounds", type=int, default=4, help="A B B A rounds per cell (default 4)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--body", default="1K,16K", help="response body sizes (default 1K,16K)")
    p.add_argument("--work-us", default="0,100,1000", help="application CPU per request, µs (default 0,100,1000)")
    p.add_argument("--server-cpu", type=int, default=1, help="CPU for gunicorn (default 1)")
    p.add_argument("--client-cpu", type=int, default=0, help="CPU for nginx and wrk (default 0)")
    p.add_argument("--smoke", action="store_true", help="CI check: 1 round of 1 s, 1K body, no app work")
    p.add_argument("--preflight", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.smoke:
        a.duration, a.rounds, a.body, a.work_us = 1, 1, "1K", "0"
    for flag, v, lo, hi in (("--duration", a.duration, 1, 600), ("--rounds", a.rounds, 1, 100),
                            ("--connections", a.connections, 1, 10000)):
        if not lo <= v <= hi:
            fatal(f"{flag} {v}: {lo} to {hi} allowed", 2)
    a.body = parse_sizes(a.body, "--body")
    try:
        a.work_us = [int(x) for x in a.work_us.split(",")]
    except ValueError:
        fatal(f"--work-us {a.work_us!r}: whole microseconds, comma-separated, expected", 2)
    if any(not 0 <= w <= 1_000_000 for w in a.work_us):
        fatal(f"--work-us {a.work_us}: 0 to 1000000 allowed", 2)
    cpus = sorted(os.sched_getaffinity(0))
    for flag, c in (("--server-cpu", a.server_cpu), ("--client-cpu", a.client_cpu)):
        if c not in cpus:
            fatal(f"{flag} {c}: not available; allowed: {','.join(map(str, cpus))}", 2)
    if os.path.exists(a.out) and os.listdir(a.out):
        fatal(f"--out {a.out}: exists and is not empty; name a new directory", 2)
    parent = os.path.dirname(os.path.abspath(a.out))
    if not os.path.isdir(parent):
        fatal(f"--out {a.out}: its parent directory does not exist", 2)
    if a.preflight:  # arguments checked; nothing installed or started yet
        print("ok")
        return
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            fatal(f"{tool} is missing (Debian: apt-get install {'wrk' if tool == 'wrk' else 'util-linux'})")
    if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        fatal("nginx is missing (Debian: apt-get install nginx)")

    cli.interrupt_on_signals()
    stack, staging = Stack(a), None
    try:
        env = fingerprint()
        stack.start()
        started = time.time()
        raw = measure(stack, a)
        wall = time.time() - started
        cases, ratios = summarize(raw, a)
        staging = tempfile.mkdtemp(prefix=".webbench-", dir=parent)
        command = ["scripts/webbench"] + sys.argv[1:]
        doc = {"schema_version": 2, "tool": "sockbench webbench", "workload": "http", "command": command,
               "settings": {"connections": a.connections, "duration_s": a.duration, "rounds": a.rounds,
                            "server_cpu": a.server_cpu, "client_cpu": a.client_cpu,
                            "gunicorn": "1 gthread worker, 4 threads, keep-alive 5 s", "nginx": "1 worker",
                            "wrk": f"1 thread, {a.connections} connections"},
               "elapsed_s": wall, "cases": cases, "ratios": ratios, "warnings": [], "env": env}
        with open(os.path.join(staging, "summary.json"), "w") as f:
            json.dump(doc, f, indent=2)
        with open(os.path.join(staging, "env.json"), "w") as f:
            json.dump(env, f, indent=2)
        readme = [f"# {os.path.basename(os.path.normpath(a.out))}", "",
                  f"Command (from the repository root, at revision `{env.get('git_revision', '?')}`):", "",
                  "```sh", " ".join(command), "```", "",
                  f"Wall time: {wall:.0f} s. nginx and wrk on CPU {a.client_cpu}, gunicorn on CPU {a.server_cpu}; "
                  f"wrk: 1 thread, {a.connections} connections, {a.duration} s per run, {a.rounds} A B B A rounds. "
                  "Medians over rounds; ratios are medians of per-round UDS/TCP ratios with 95% bootstrap CIs.", "",
                  *webtable.web_table(cases, ratios), ""]
        with open(os.path.join(staging, "README.md"), "w") as f:
            f.write("\n".join(readme))
        if os.path.exists(a.out):
            os.rmdir(a.out)
        os.replace(staging, a.out)
        staging = None
        print("\n".join(webtable.web_table(cases, ratios)))
    except KeyboardInterrupt:
        print("interrupted: stopped nginx and gunicorn, wrote nothing", file=sys.stderr)
        sys.exit(130)
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        fatal(str(e))
    finally:
        stack.close()
        if staging:
            shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    main()
