"""Log-reading benchmark: the auditor's log engine against pgbadger, on one real log.

    python bench/logbench.py /var/tmp/pgbench-150mb.log            # make it if missing
    python bench/logbench.py LOG --size-mb 300 --clients 8 --repeat 3

1. The log. If LOG does not exist, a private PostgreSQL cluster
   (fixtures/pgcluster.py: log_min_duration_statement = 0, log_connections and
   log_disconnections on) runs ``pgbench -C`` (a new connection per transaction, the
   TPC-B-like script, simple protocol) until its stderr log reaches ``--size-mb`` (150
   MB by default); the log is copied to LOG and kept, so later runs reuse it.
2. The runs, on the same file in the same run: ``auditor logs LOG --json`` (the
   auditor's workload summary: the full analysis, detectors included) and ``pgbadger``
   (its default report), each on one core (``taskset -c 0``; pgbadger ``-j 1``) and on
   every core (pgbadger ``-j N``). Each is run ``--repeat`` times; the best wall time
   counts (the machine may be busy).
3. Printed: MB/s for each, the ratio auditor / pgbadger, and peak memory: the largest
   single process's RSS (``/usr/bin/time -f %M``), and the peak over time of the
   process tree's summed RSS and summed PSS (sampled from /proc every 20 ms). With
   forked workers the RSS sum counts every page the workers share with their parent
   once per process; the PSS sum shares them out and is the tree's real footprint.

Until ``auditor logs`` is wired into the CLI, ``python -m
auditor.collectors.querylog.parallel LOG`` (the same reader and detectors, a shorter
summary) is timed instead, and the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PREFIX = "%t [%p]: user=%u,db=%d,app=%a,client=%h "  # pgbadger's recommended prefix


# -- making the log ------------------------------------------------------------------------
def make_log(dest: Path, size_mb: int, clients: int, prefix: str) -> None:
    from fixtures.pgcluster import LoggingCluster
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        sys.exit("pgbench not found (apt-get install postgresql-contrib or postgresql-client)")
    target = size_mb << 20
    started = time.perf_counter()
    with LoggingCluster(line_prefix=prefix, settings={"max_connections": "100"}) as pg:
        env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(pg.port), "PGUSER": "postgres"}
        subprocess.run(["psql", "-q", "-d", "postgres", "-c", "CREATE DATABASE bench"],
                       env=env, check=True, capture_output=True)
        subprocess.run([pgbench, "-i", "-q", "-s", "10", "bench"], env=env, check=True,
                       capture_output=True)
        while pg.log_path.stat().st_size < target:
            left = target - pg.log_path.stat().st_size
            seconds = max(5, min(60, left // (2 << 20)))
            subprocess.run([pgbench, "-C", "-n", "-c", str(clients), "-j", "2",
                            "-T", str(seconds), "bench"], env=env, check=True,
                           capture_output=True)
            print(f"  log: {pg.log_path.stat().st_size / 2**20:.0f} MB after "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        pg.copy_log(dest)
    print(f"made {dest} ({dest.stat().st_size / 2**20:.1f} MB) in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)


# -- running and measuring -------------------------------------------------------------------
def _tree_rss_kb(pid: int) -> tuple[int, int]:
    """(RSS sum, PSS sum) over ``pid`` and its descendants, in KB. PSS divides each page
    shared between processes (a forked worker shares its parent's pages) among them, so
    its sum is the tree's real footprint; the RSS sum counts shared pages once per
    process."""
    total = pss = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            with open(f"/proc/{p}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total, pss


def run(cmd: list[str]) -> dict:
    """Run ``cmd`` under /usr/bin/time; wall seconds, peak RSS (largest process, KB) and
    the peak of the process tree's summed RSS (KB)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        full = ["/usr/bin/time", "-f", "%e %M", "-o", tf.name, *cmd]
        started = time.perf_counter()
        proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        peak_sum = peak_pss = 0
        while proc.poll() is None:
            rss, pss = _tree_rss_kb(proc.pid)
            peak_sum, peak_pss = max(peak_sum, rss), max(peak_pss, pss)
            time.sleep(0.02)
        wall = time.perf_counter() - started
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): "
                               f"{err.decode(errors='replace')[-2000:]}")
        elapsed, max_kb = tf.read().split()[-2:]
    return {"seconds": wall, "max_rss_kb": int(max_kb), "tree_rss_kb": peak_sum,
            "tree_pss_kb": peak_pss, "stdout": out.decode(errors="replace")}


def auditor_cmd(log: Path) -> tuple[list[str], str]:
    exe = shutil.which("auditor")
    if exe and os.sep + "shims" + os.sep in exe:
        # a version manager's shim (pyenv): a shell script that finds the interpreter
        # on every call (about 0.1 s); time the installed script it runs instead
        real = subprocess.run(["pyenv", "which", "auditor"], capture_output=True, text=True)
        if real.returncode == 0 and real.stdout.strip():
            exe = real.stdout.strip()
    if exe:
        probe = subprocess.run([exe, "logs", "--help"], capture_output=True)
        if probe.returncode == 0:
            return [exe, "logs", str(log), "--json"], "auditor logs LOG --json"
    return ([sys.executable, "-m", "auditor.collectors.querylog.parallel", str(log)],
            "python -m auditor.collectors.querylog LOG (auditor logs not wired yet)")


def best(cmd: list[str], repeat: int) -> dict:
    runs = [run(cmd) for _ in range(repeat)]
    out = min(runs, key=lambda r: r["seconds"])
    out["max_rss_kb"] = max(r["max_rss_kb"] for r in runs)
    out["tree_rss_kb"] = max(r["tree_rss_kb"] for r in runs)
    out["tree_pss_kb"] = max(r["tree_pss_kb"] for r in runs)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("log", type=Path, help="the benchmark log (made there if missing)")
    ap.add_argument("--size-mb", type=int, default=150)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--prefix", default=PREFIX, help="log_line_prefix of a log made here")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-pgbadger", action="store_true", help="time the auditor only")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    if not args.log.exists():
        make_log(args.log, args.size_mb, args.clients, args.prefix)
    size = args.log.stat().st_size
    mb = size / 2**20
    cores = len(os.sched_getaffinity(0))
    cmd, label = auditor_cmd(args.log)
    pgbadger = shutil.which("pgbadger")
    if pgbadger is None:
        sys.exit("pgbadger not found (apt-get install pgbadger)")
    version = subprocess.run([pgbadger, "--version"], capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        pgb = [pgbadger, "-q", "--prefix", args.prefix, "-o", f"{tmp}/out.html", str(args.log)]
        cases = {
            "auditor, 1 core": ["taskset", "-c", "0", *cmd],
            f"auditor, {cores} cores": cmd,
            "pgbadger, 1 core": ["taskset", "-c", "0", *pgb[:1], "-j", "1", *pgb[1:]],
            f"pgbadger, {cores} cores": [*pgb[:1], "-j", str(cores), *pgb[1:]],
        }
        if args.skip_pgbadger:
            cases = {k: v for k, v in cases.items() if k.startswith("auditor")}
        results = {}
        for name, c in cases.items():
            print(f"running {name} ...", file=sys.stderr)
            results[name] = best(c, args.repeat)
    statements = None
    for name in ("auditor, 1 core", f"auditor, {cores} cores"):
        try:
            summary = json.loads(results[name]["stdout"])
        except ValueError:
            sys.exit(f"{name}: the output is not the JSON summary:\n{results[name]['stdout'][:500]}")
        if not summary.get("statements"):
            sys.exit(f"{name}: read no statements: {summary}")
        if statements is not None and summary["statements"] != statements:
            sys.exit(f"one core and {cores} cores disagree: {statements} vs {summary['statements']}")
        statements = summary["statements"]

    print(f"log: {args.log} ({mb:.1f} MB{f', {statements:,} statements' if statements else ''})")
    print(f"auditor: {label}; {version}; {cores} cores; load average before the runs "
          f"{load:.2f}{' (busy: figures are pessimistic)' if load > 0.5 else ''}")
    print(f"{'run':<22} {'seconds':>8} {'MB/s':>8} {'max RSS MB':>11} {'tree RSS MB':>12} "
          f"{'tree PSS MB':>12}")
    for name, r in results.items():
        print(f"{name:<22} {r['seconds']:>8.2f} {mb / r['seconds']:>8.1f} "
              f"{r['max_rss_kb'] / 1024:>11.1f} {r['tree_rss_kb'] / 1024:>12.1f} "
              f"{r['tree_pss_kb'] / 1024:>12.1f}")
    if args.skip_pgbadger:
        return 0
    a1 = results["auditor, 1 core"]["seconds"]
    an = results[f"auditor, {cores} cores"]["seconds"]
    p1 = results["pgbadger, 1 core"]["seconds"]
    pn = results[f"pgbadger, {cores} cores"]["seconds"]
    print(f"ratio, 1 core: auditor {p1 / a1:.1f}x pgbadger's throughput")
    print(f"ratio, {cores} cores: auditor {pn / an:.1f}x pgbadger's throughput "
          f"({p1 / an:.1f}x pgbadger on 1 core)")
    if args.json:
        args.json.write_text(json.dumps({
            "log": str(args.log), "bytes": size, "statements": statements, "cores": cores,
            "auditor": label, "pgbadger": version, "load_average": load,
            "runs": {k: {kk: v for kk, v in r.items() if kk != "stdout"}
                     for k, r in results.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
