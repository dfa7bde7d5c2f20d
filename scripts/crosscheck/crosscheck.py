#!/usr/bin/env python3
"""Cross-check sockbench against other tools, same pinning.

--what latency (default), median RTT:
  tcp4:       sockbench vs sockperf ping-pong (--full-rtt) vs lat_ref (C).
  uds-stream: sockbench vs lat_ref (Debian's sockperf 3.7 has no AF_UNIX).
  pipe:       sockbench vs `perf bench sched pipe` (both ends on one CPU,
              since perf cannot pin its two sides apart; 4-byte messages).
--what throughput, tcp4 one-way bytes/s at --size-byte writes:
  sockbench throughput vs `iperf3 -c 127.0.0.1 -l SIZE` (-A pins each end).
--what bench, tcp4 and uds-stream 64 B:
  `sockbench latency` mean RTT vs `cargo bench` (pingpong/<t>/64, mean time
  per iteration from criterion's raw.csv; p50 from its tail side file).

Tools run in A B ... B A order, --pairs times, and each ratio is the median
of the per-round ratios sockbench/other. Needs: sockperf and perf (installed
with apt-get when run as root), gcc, cargo. Prints a Markdown table; -o
writes it to a file too.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import load  # noqa: E402  (standard library only)


def fatal(msg):
    print(f"fatal: {msg}", file=sys.stderr)
    sys.exit(1)


def need(tool, package):
    if shutil.which(tool):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, stdout=subprocess.DEVNULL)
    if not shutil.which(tool):
        fatal(f"'{tool}' is missing: install the Debian package '{package}' (apt-get install {package})")


def sockbench(args, transport, size, mode, scpu, ccpu):
    out = subprocess.run(
        [os.path.join(ROOT, "target", "release", "sockbench"), "latency", "-t", transport, "-s", str(size),
         "-d", f"{args.seconds}s", "--trials", "1", "--mode", mode, "--server-cpu", str(scpu),
         "--client-cpu", str(ccpu), "--format", "json"],
        check=True, capture_output=True, text=True).stdout
    case = json.loads(out)["cases"][0]
    return {"p50_ns": case["p50_ns"], "mean_ns": case["mean_ns"]}


def sockperf(args, size, scpu, ccpu):
    port = str(20000 + os.getpid() % 20000)
    srv = subprocess.Popen(["taskset", "-c", str(scpu), "sockperf", "sr", "--tcp", "-i", "127.0.0.1", "-p", port],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import time
        time.sleep(0.5)
        out = subprocess.run(["taskset", "-c", str(ccpu), "sockperf", "pp", "--tcp", "-i", "127.0.0.1", "-p", port,
                              "-m", str(size), "-t", str(args.seconds), "--full-rtt"],
                             check=True, capture_output=True, text=True).stdout
    finally:
        srv.kill()
        srv.wait()
    p50 = re.search(r"percentile 50\.000 =\s+([0-9.]+)", out)
    avg = re.search(r"avg-rtt=([0-9.]+)", out)
    if not p50 or not avg:
        fatal(f"could not read sockperf's output:\n{out}")
    return {"p50_ns": float(p50.group(1)) * 1000, "mean_ns": float(avg.group(1)) * 1000}


def lat_ref(args, exe, transport, size, scpu, ccpu):
    iters = str(int(args.seconds * 30000))
    out = subprocess.run([exe, transport, str(size), iters, str(scpu), str(ccpu)],
                         check=True, capture_output=True, text=True).stdout.split()
    return {"p50_ns": float(out[0]), "mean_ns": float(out[1])}


def perf_pipe(args, cpu, threaded):
    loops = str(int(args.seconds * 100000))
    cmd = ["taskset", "-c", str(cpu), "perf", "bench", "sched", "pipe", "-l", loops] + (["-T"] if threaded else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    m = re.search(r"([0-9.]+) usecs/op", out)
    if not m:
        fatal(f"could not read perf's output:\n{out}")
    return {"p50_ns": None, "mean_ns": float(m.group(1)) * 1000}


def sockbench_throughput(args, size, scpu, ccpu):
    out = subprocess.run(
        [os.path.join(ROOT, "target", "release", "sockbench"), "throughput", "-t", "tcp4", "-s", str(size),
         "-d", f"{args.seconds}s", "--trials", "1", "--mode", "process", "--server-cpu", str(scpu),
         "--client-cpu", str(ccpu), "--format", "json"],
        check=True, capture_output=True, text=True).stdout
    return {"bytes_per_s": json.loads(out)["cases"][0]["bytes_per_s"]}


def iperf3(args, size, scpu, ccpu):
    port = str(20000 + os.getpid() % 20000 + 1)
    srv = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", port, "-A", str(scpu)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import time
        time.sleep(0.5)
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", port, "-l", str(size), "-t", str(args.seconds),
                              "-A", str(ccpu), "-J"], check=True, capture_output=True, text=True).stdout
    finally:
        srv.wait(timeout=10)
    return {"bytes_per_s": json.loads(out)["end"]["sum_received"]["bits_per_second"] / 8}


def emit(lines, output):
    """Print the table, and write it to `output` when given."""
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if output:
        with open(output, "w") as f:
            f.write(text)


def abba(tools, pairs):
    """Run every tool once per round, alternating order; return results per tool."""
    res = {name: [] for name, _ in tools}
    for r in range(2 * pairs):
        order = tools if r % 2 == 0 else list(reversed(tools))
        for name, fn in order:
            res[name].append(fn())
    return res


def ratio(res, a, b, key):
    rs = [x[key] / y[key] for x, y in zip(res[a], res[b]) if x[key] and y[key]]
    return statistics.median(rs) if rs else None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--what", choices=["latency", "throughput", "bench"], default="latency")
    p.add_argument("--size", type=int, default=None,
                   help="message (latency, default 64) or write (throughput, default 65536) size in bytes")
    p.add_argument("--seconds", type=float, default=2.0, help="length of each run (default 2)")
    p.add_argument("--pairs", type=int, default=3, help="A B B A pairs (default 3)")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("-o", "--output", help="also write the Markdown table here")
    args = p.parse_args()
    if args.size is None:
        args.size = 64 if args.what == "latency" else 65536
    if args.what == "throughput":
        return throughput_main(args)
    if args.what == "bench":
        return bench_main(args)
    if args.size < 14:
        fatal("--size must be at least 14 (sockperf's smallest message)")
    need("sockperf", "sockperf")
    need("perf", "linux-perf")
    need("gcc", "gcc")
    need("cargo", "cargo")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="crosscheck-")
    exe = os.path.join(tmp, "lat_ref")
    subprocess.run(["gcc", "-O2", "-o", exe, os.path.join(HERE, "lat_ref.c")], check=True)
    s, c, n = args.server_cpu, args.client_cpu, args.size
    lines = [f"message size {n} B, server CPU {s}, client CPU {c}, {args.seconds}s per run, "
             f"{args.pairs} A B B A pairs; RTT in µs (sockperf run with --full-rtt, so no halving)", "",
             "| transport | tool | median p50 | median mean | sockbench(process)/tool, p50 | same, mean |",
             "|---|---|---|---|---|---|"]

    def table(transport, res, base):
        for name in res:
            p50s = [x["p50_ns"] for x in res[name] if x["p50_ns"]]
            means = [x["mean_ns"] for x in res[name]]
            r50 = ratio(res, base, name, "p50_ns")
            rmean = ratio(res, base, name, "mean_ns")
            lines.append("| {} | {} | {} | {:.2f} | {} | {} |".format(
                transport, name, f"{statistics.median(p50s) / 1000:.2f}" if p50s else "–",
                statistics.median(means) / 1000,
                "–" if name == base or r50 is None else f"{r50:.3f}",
                "–" if name == base or rmean is None else f"{rmean:.3f}"))

    for transport in ["tcp4", "uds-stream"]:
        tools = [("sockbench(process)", lambda t=transport: sockbench(args, t, n, "process", s, c)),
                 ("sockbench(thread)", lambda t=transport: sockbench(args, t, n, "thread", s, c)),
                 ("lat_ref", lambda t=transport: lat_ref(args, exe, t, n, s, c))]
        if transport == "tcp4":
            tools.append(("sockperf", lambda: sockperf(args, n, s, c)))
        table(transport, abba(tools, args.pairs), "sockbench(process)")
    pipe_tools = [("sockbench(process)", lambda: sockbench(args, "pipe", 4, "process", s, s)),
                  ("perf-bench-pipe", lambda: perf_pipe(args, s, False)),
                  ("sockbench(thread)", lambda: sockbench(args, "pipe", 4, "thread", s, s)),
                  ("perf-bench-pipe -T", lambda: perf_pipe(args, s, True))]
    lines.append(f"| pipe, 4 B, both on CPU {s} | | | | | |")
    table("pipe", abba(pipe_tools, args.pairs), "sockbench(process)")
    shutil.rmtree(tmp)
    emit(lines, args.output)


def criterion_bench(args, transport, scpu, ccpu, home):
    env = dict(os.environ, CRITERION_HOME=home, SOCKBENCH_SERVER_CPU=str(scpu), SOCKBENCH_CLIENT_CPU=str(ccpu))
    subprocess.run(["cargo", "bench", "--quiet", "--bench", "latency", "--", f"pingpong/{transport}/64$",
                    "--noplot", "--save-baseline", "crosscheck"], cwd=ROOT, env=env, check=True, capture_output=True)
    d = os.path.join(home, "pingpong", transport, "64", "new")
    _, _, total, iters = load.read_raw_csv(os.path.join(d, "raw.csv"))
    tails = json.load(open(os.path.join(d, "tails.json")))["summary"]
    return {"mean_ns": total / iters, "p50_ns": tails["p50_ns"]}


def bench_main(args):
    need("cargo", "cargo")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "bench", "--no-run", "--quiet", "--bench", "latency"], cwd=ROOT, check=True,
                   capture_output=True)
    s, c = args.server_cpu, args.client_cpu
    home = tempfile.mkdtemp(prefix="crosscheck-criterion-")
    lines = [f"64 B ping-pong, server CPU {s}, client CPU {c}; sockbench latency -d {args.seconds}s vs "
             f"cargo bench (full profile: 0.5 s warm-up, 2 s sampling); {args.pairs} A B B A pairs; µs", "",
             "| transport | sockbench mean | cargo bench mean | ratio (paired, median) | sockbench p50 | bench-tails p50 | ratio |",
             "|---|---|---|---|---|---|---|"]
    for t in ["tcp4", "uds-stream"]:
        res = abba([("cli", lambda t=t: sockbench(args, t, 64, "thread", s, c)),
                    ("bench", lambda t=t: criterion_bench(args, t, s, c, home))], args.pairs)
        r_mean = ratio(res, "cli", "bench", "mean_ns")
        r_p50 = ratio(res, "cli", "bench", "p50_ns")
        med = lambda k, key: statistics.median(x[key] for x in res[k]) / 1000
        lines.append(f"| {t} | {med('cli', 'mean_ns'):.2f} | {med('bench', 'mean_ns'):.2f} | {r_mean:.3f} | "
                     f"{med('cli', 'p50_ns'):.2f} | {med('bench', 'p50_ns'):.2f} | {r_p50:.3f} |")
    shutil.rmtree(home)
    emit(lines, args.output)


def throughput_main(args):
    need("iperf3", "iperf3")
    need("cargo", "cargo")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    s, c, n = args.server_cpu, args.client_cpu, args.size
    tools = [("sockbench", lambda: sockbench_throughput(args, n, s, c)), ("iperf3", lambda: iperf3(args, n, s, c))]
    res = abba(tools, args.pairs)
    rates = {k: [x["bytes_per_s"] for x in v] for k, v in res.items()}
    ratios = [a / b for a, b in zip(rates["sockbench"], rates["iperf3"])]
    lines = [f"tcp4 one-way transfer, {n} B writes, receiver on CPU {s}, sender on CPU {c}, "
             f"{args.seconds}s per run, {args.pairs} A B B A pairs; GB/s = 1e9 bytes/s", "",
             "| tool | runs (GB/s) | median GB/s |", "|---|---|---|"]
    for k, v in rates.items():
        lines.append(f"| {k} | {' '.join(f'{x / 1e9:.2f}' for x in v)} | {statistics.median(v) / 1e9:.3f} |")
    lines += ["", f"sockbench/iperf3, median of per-round ratios: {statistics.median(ratios):.3f} "
                  f"(rounds: {' '.join(f'{r:.3f}' for r in ratios)})"]
    emit(lines, args.output)


if __name__ == "__main__":
    main()
