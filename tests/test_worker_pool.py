"""The parallel reader's workers are started by a fork server, never forked from the
reading process (where the progress bar's thread, or a caller's, may hold a lock the
child would inherit held), and they do not need the caller's main module: a script
without an ``if __name__ == "__main__":`` guard, or read from stdin, reads in parallel
as it did when the workers were forked."""

from __future__ import annotations

import os
import subprocess
import sys

from auditor.collectors.querylog.parallel import _worker_pool

pytest_plugins = ["logfixtures"]


def test_workers_are_not_children_of_the_reader():
    pool = _worker_pool(2)
    try:
        assert pool._ctx.get_start_method() in ("forkserver", "spawn")
        parents = set(pool.map(_parent, range(4), chunksize=1))
        assert os.getpid() not in parents  # forked by the fork server, not by us
    finally:
        pool.close()
        pool.join()


def _parent(_):
    return os.getppid()


_SCRIPT = """
from auditor.collectors.querylog import read_logs
from auditor.collectors.querylog.parallel import ReadStats
st = ReadStats()
many = read_logs([{path!r}], jobs=2, chunk_bytes=3000, min_parallel_bytes=0, stats=st)
one = read_logs([{path!r}], jobs=1)
print(many == one, st.chunks, many.statements)
"""


def test_a_script_without_a_main_guard_reads_in_parallel(shop_logs, tmp_path):
    path = str(shop_logs["n_plus_one"].paths["jsonlog"])
    script = tmp_path / "unguarded.py"
    script.write_text(_SCRIPT.format(path=path))
    for cmd, stdin in (([sys.executable, str(script)], None),
                       ([sys.executable, "-"], script.read_text())):
        out = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120,
                             cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        same, chunks, statements = out.stdout.split()
        assert same == "True" and int(chunks) > 5 and int(statements) > 0
