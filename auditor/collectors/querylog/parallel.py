"""Reading logs into a profile: one pass, in parallel over chunks for large files.

    profile = read_profile([LogSpec("postgresql.log")])            # all cores if large
    profile = read_profile(specs, jobs=1)                           # one core
    with progress_bar() as cb:                                      # a TTY progress bar
        profile = read_profile(specs, progress=cb)

**Chunk → partial → merge.** A plain (uncompressed) stderr, rds or jsonlog file larger
than ``min_parallel_bytes`` (32 MB) is cut into chunks of about ``chunk_bytes`` (16 MB)
at record boundaries: a chunk starts at a line that begins a record (it matches the
``log_line_prefix``; for jsonlog any line). Each chunk is read in a worker process
(:mod:`multiprocessing`, every core by default; workers started by a fork server, never
forked from this process, see :func:`_worker_pool`) into a *partial profile*: a
:class:`~auditor.collectors.querylog.profile.ProfileBuilder` made with
``orphans=True``. The parent folds the partials in log order with
:meth:`ProfileBuilder.absorb <auditor.collectors.querylog.profile.ProfileBuilder.absorb>`:
sessions and requests that cross a chunk edge are stitched by replaying the few
records a chunk could not interpret alone (its sessions' *heads*) onto the state the
previous chunks left, and checking that the replay arrives where the chunk's reader
continued from; when it does not (a transaction open across the edge that also holds a
pause longer than ``idle_gap_ms``, say) the parent reads that chunk again itself. So the
result is exactly what one pass gives (a test compares them on every fixture log), and
the figures say how many chunks had to be re-read.

Compressed files, standard input and the syslog, csvlog, cloudsql and cnpg formats are
read in one pass in this process (a compressed stream cannot be entered in the middle;
a csvlog field may hold a newline followed by text that looks like a record start, so
its record boundaries cannot be found without reading from the start).

**On a cluster.** The partial profile is a plain picklable value (counts, integer
microsecond sums, fixed-resolution histograms, bounded detector aggregates, the
chunk's open sessions and heads) and reading a chunk needs only ``(path, format,
log_line_prefix, start, end, chunk number)``, so the same steps run on Dask or Spark:
``chunk_tasks()`` gives the tasks, ``read_chunk`` is the map
(``dask.bag.from_sequence(tasks).map(read_chunk)`` or ``rdd.map``), and the fold is
``absorb`` over the partials in chunk order on the driver (``bag.fold`` / ``rdd.collect``
then a loop); it touches no log data except for a chunk whose replay disagrees, which it
re-reads by its byte range. Counts, sums and histograms are commutative; the order of
the fold only matters for stitching sessions, which is why it goes in chunk order.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from auditor.collectors.querylog.inputs import (MAX_LINE_CHARS, compression_of, decoded_blocks,
                                               decoded_lines,
                                               NOT_UTF8 as _NOT_UTF8)
from auditor.collectors.querylog.profile import CHUNK_SHIFT, ProfileBuilder
from auditor.facts.workload import Detection, WorkloadProfile

__all__ = ["read_profile", "chunk_tasks", "chunk_blocks", "read_chunk", "ChunkTask", "ReadStats",
           "progress_bar", "main", "MIN_PARALLEL_BYTES", "CHUNK_BYTES"]

MIN_PARALLEL_BYTES = 32 << 20
CHUNK_BYTES = 16 << 20
_BLOCK = 1 << 20
_CHUNKABLE = ("stderr", "rds", "jsonlog")

# Progress callback: (bytes read, bytes in all, statements so far); bytes in all is
# None when unknown (compressed input, stdin).
Progress = Callable[[int, "int | None", int], None]


# -- reading a byte range as lines -----------------------------------------------------
_bad_bytes = [0]


def _count_and_replace(exc: UnicodeError):
    _bad_bytes[0] += 1
    return "\ufffd", exc.end  # type: ignore[attr-defined]


_ERRORS = "auditor-chunk-count-replace"
codecs.register_error(_ERRORS, _count_and_replace)


def chunk_lines(path: "str | os.PathLike", start: int, end: int | None,
                skipped: dict[str, int], read: list[int] | None = None,
                newline: bool = True, max_chars: int = MAX_LINE_CHARS) -> Iterator[str]:
    """The lines of bytes ``start``..``end`` of a plain file, decoded as the reader
    does (UTF-8, undecodable bytes as U+FFFD counted in ``skipped``, universal
    newlines, each line ending in ``\\n`` but perhaps the last; a line longer than
    ``max_chars`` replaced by its marker line, never held whole:
    :func:`~auditor.collectors.querylog.inputs.decoded_blocks`). ``read[0]`` follows
    the bytes read. ``newline=False``: the lines without their ``\\n`` (no copy per
    line; for :func:`records_of` with ``stripped=True``)."""
    before = _bad_bytes[0]
    try:
        yield from decoded_lines(_byte_blocks(path, start, end, read), skipped,
                                 newline=newline, errors=_ERRORS, max_chars=max_chars)
    finally:
        bad = _bad_bytes[0] - before
        if bad:
            skipped[_NOT_UTF8] = skipped.get(_NOT_UTF8, 0) + bad


def _byte_blocks(path: "str | os.PathLike", start: int, end: int | None,
                 read: list[int] | None) -> Iterator[bytes]:
    """Bytes ``start``..``end`` of a file in blocks of up to ``_BLOCK``."""
    with open(path, "rb") as fh:
        fh.seek(start)
        left = None if end is None else end - start
        while left is None or left > 0:
            data = fh.read(_BLOCK if left is None else min(_BLOCK, left))
            if not data:
                return
            if left is not None:
                left -= len(data)
            if read is not None:
                read[0] += len(data)
            yield data


def chunk_blocks(path: "str | os.PathLike", start: int, end: int | None,
                 skipped: dict[str, int], read: list[int] | None = None,
                 max_chars: int = MAX_LINE_CHARS) -> Iterator[str]:
    """Bytes ``start``..``end`` of a plain file as text blocks of whole lines, decoded
    as :func:`chunk_lines` decodes them (the marker line for an over-long one
    included), each block ending with ``\\n`` but perhaps the last. For the compiled
    scanner (:meth:`ProfileBuilder.consume_stderr_blocks`), which splits the lines
    itself."""
    before = _bad_bytes[0]
    try:
        yield from decoded_blocks(_byte_blocks(path, start, end, read), skipped,
                                  errors=_ERRORS, max_chars=max_chars)
    finally:
        bad = _bad_bytes[0] - before
        if bad:
            skipped[_NOT_UTF8] = skipped.get(_NOT_UTF8, 0) + bad


def records_of(fmt: str, prefix: str | None, lines: Iterable[str], skipped: dict[str, int],
               counts: dict[str, int], stripped: bool = False) -> Iterator:
    """The records of lines of a stderr/rds or jsonlog log (the format readers of
    :mod:`auditor.collectors.querylog.formats`); ``stripped``: the lines come without
    their newline (``chunk_lines(..., newline=False)``)."""
    from auditor.collectors.querylog import formats
    from auditor.collectors.querylog.prefix import get_prefix
    if fmt == "jsonlog":
        return formats.read_jsonlog(lines, skipped, counts)
    return formats.read_stderr(lines, get_prefix(prefix or ""), skipped, counts,
                               stripped=stripped)


def _consume(b: ProfileBuilder, fmt: str, prefix: str | None, path: str, start: int,
             end: int | None, read: list[int] | None, counts: dict[str, int],
             progress: Callable[[int], None] | None = None) -> None:
    """Read bytes ``start``..``end`` of ``path`` into ``b``: jsonlog through
    ``b.consume(records_of(...))``, stderr through the block scanner
    (:meth:`ProfileBuilder.consume_stderr_blocks`). ``read[0]`` follows the bytes
    read."""
    if fmt == "jsonlog":
        lines = chunk_lines(path, start, end, b.skipped, read, newline=False)
        b.consume(records_of(fmt, prefix, lines, b.skipped, counts, stripped=True), progress)
        return
    from auditor.collectors.querylog.prefix import get_prefix
    b.consume_stderr_blocks(chunk_blocks(path, start, end, b.skipped, read),
                            get_prefix(prefix or ""), b.skipped, counts, progress)


# -- chunks ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ChunkTask:
    """One chunk to read: bytes ``start``..``end`` of ``path``; ``chunk``: its number in
    the whole stream (orders positions); ``orphans``: whether something was read before
    it (its sessions may have started earlier)."""
    path: str
    fmt: str
    prefix: str | None
    start: int
    end: int
    chunk: int
    orphans: bool
    detection: Detection
    keep_requests: bool = False


def _record_start(fmt: str, prefix: str | None) -> Callable[[str], bool]:
    if fmt == "jsonlog":
        return lambda line: True
    from auditor.collectors.querylog.prefix import get_prefix
    match = get_prefix(prefix or "").regex.match
    return lambda line: bool(line) and line[0] != "\t" and match(line) is not None


_HEAD = 64 << 10  # how much of a line chunk_bounds reads to tell whether it starts a record


def _skip_line(fh) -> None:
    """Read up to the end of the current line (in pieces: a line may be very long)."""
    while True:
        piece = fh.readline(_BLOCK)
        if not piece or piece[-1:] == b"\n":
            return


def chunk_bounds(path: str, size: int, fmt: str, prefix: str | None,
                 chunk_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges of about ``chunk_bytes`` covering the file, each starting at a line
    that begins a record."""
    starts = [0]
    is_start = _record_start(fmt, prefix)
    with open(path, "rb") as fh:
        nominal = chunk_bytes
        while nominal < size:
            fh.seek(nominal)
            _skip_line(fh)  # the rest of the line the nominal offset falls in
            found = None
            while True:
                at = fh.tell()
                if at >= size:
                    break
                line = fh.readline(_HEAD)  # (a line's start tells; never a whole long line)
                if not line:
                    break
                if line[-1:] != b"\n":
                    _skip_line(fh)
                if is_start(line.decode("utf-8", "replace").rstrip("\r\n")):
                    found = at
                    break
                if at - nominal > chunk_bytes:  # no record start in a whole chunk
                    break
            if found is None:
                break
            if found > starts[-1]:
                starts.append(found)
            nominal = max(found, nominal) + chunk_bytes
    ends = starts[1:] + [size]
    return list(zip(starts, ends))


def chunk_tasks(path: str, fmt: str, prefix: str | None, *, first_chunk: int,
                orphans: bool, detection: Detection, keep_requests: bool = False,
                chunk_bytes: int = CHUNK_BYTES) -> list[ChunkTask]:
    size = os.path.getsize(path)
    out = []
    for i, (start, end) in enumerate(chunk_bounds(path, size, fmt, prefix, chunk_bytes)):
        out.append(ChunkTask(path, fmt, prefix, start, end, first_chunk + i,
                             orphans or i > 0, detection, keep_requests))
    return out


def read_chunk(task: ChunkTask) -> ProfileBuilder:
    """Read one chunk into a partial profile (the map step; runs in a worker)."""
    b = ProfileBuilder(detection=task.detection, keep_requests=task.keep_requests,
                       chunk=task.chunk, orphans=task.orphans)
    counts: dict[str, int] = {}
    _consume(b, task.fmt, task.prefix, task.path, task.start, task.end, None, counts)
    b.end_chunk()
    b.format_counts = counts  # type: ignore[attr-defined]
    b.peak_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # type: ignore[attr-defined]
    return b


def _reader_of(task: ChunkTask) -> Callable[[], Iterable]:
    def again() -> Iterable:
        return records_of(task.fmt, task.prefix,
                          chunk_lines(task.path, task.start, task.end, {}, newline=False),
                          {}, {}, stripped=True)
    return again


# -- the whole read ----------------------------------------------------------------------
@dataclass
class ReadStats:
    """What a read did: files, bytes, chunks read in workers, chunks re-read in the
    parent because a replayed head disagreed, workers used, their peak RSS (KB)."""
    files: list[dict] = field(default_factory=list)
    bytes: int = 0
    chunks: int = 0
    reread: int = 0
    jobs: int = 1
    worker_peak_rss_kb: list[int] = field(default_factory=list)
    seconds: float = 0.0


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _plain(path: Path) -> bool:
    """True for an uncompressed file. A file that cannot be opened is not "plain": the
    one-pass reader then opens it and reports why (TargetUnreachable, not a crash)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError:
        return False
    return compression_of(head) is None


def read_profile(specs: Iterable, *, detection: Detection | None = None,
                 keep_requests: bool = False, jobs: int | None = None,
                 chunk_bytes: int = CHUNK_BYTES, min_parallel_bytes: int = MIN_PARALLEL_BYTES,
                 progress: Progress | None = None, stats: ReadStats | None = None,
                 files: list[dict] | None = None) -> WorkloadProfile:
    """Read ``specs`` (LogSpec values or paths) in order, as one stream, into a
    :class:`~auditor.facts.workload.WorkloadProfile` (see the module docstring).

    ``detection``: the detectors' thresholds. ``keep_requests``: keep every request
    (memory grows with the log). ``jobs``: worker processes for large files (None:
    every core; 1: none). ``chunk_bytes``/``min_parallel_bytes``: chunk size and the
    file size from which chunks are read in workers. ``progress``: called with (bytes
    read, bytes in all or None, statements). ``stats``: receives a :class:`ReadStats`.
    ``files``: receives one ``LogFile.info()`` dict per file. Raises TargetUnreachable
    or ConfigError like :func:`auditor.collectors.querylog.read_logs`.
    """
    from auditor.collectors.querylog import LogSpec
    from auditor.collectors.querylog.formats import open_log
    det = detection or Detection()
    jobs = _cpus() if jobs is None else max(1, jobs)
    st = stats if stats is not None else ReadStats()
    st.jobs = jobs
    started = time.perf_counter()
    specs = [s if isinstance(s, LogSpec) else LogSpec(s) for s in specs]
    total = 0
    plain: dict[int, bool] = {}
    for i, spec in enumerate(specs):
        p = Path(spec.path)
        if str(spec.path) != "-" and p.is_file():
            plain[i] = _plain(p)
            total += p.stat().st_size if plain[i] else 0
    known_total = total if all(plain.get(i) for i in range(len(specs))) else None
    builder = ProfileBuilder(detection=det, keep_requests=keep_requests)
    done = [0]
    chunk_no = 0
    read_any = False
    pool = None
    try:
        for i, spec in enumerate(specs):
            before = builder.statements
            f = open_log(spec.path, spec.format, spec.line_prefix, builder.skipped)
            path = str(spec.path)
            chunkable = plain.get(i) and f.format in _CHUNKABLE
            if chunkable:
                with contextlib.suppress(Exception):
                    f.records.close()  # not read: the chunks are
                size = os.path.getsize(path)
                fmt = "jsonlog" if f.format == "jsonlog" else "stderr"
                parallel = jobs > 1 and size >= min_parallel_bytes
                tasks = chunk_tasks(path, fmt, f.prefix, first_chunk=chunk_no,
                                    orphans=read_any, detection=det,
                                    keep_requests=keep_requests,
                                    chunk_bytes=chunk_bytes if parallel else max(size, 1))
                chunk_no += len(tasks)
                if parallel:
                    if pool is None:
                        pool = _worker_pool(jobs)
                    for task, part in zip(tasks, pool.imap(read_chunk, tasks)):
                        if not builder.absorb(part, _reader_of(task)):
                            st.reread += 1
                        for k, v in part.format_counts.items():
                            f.counts[k] = f.counts.get(k, 0) + v
                        st.worker_peak_rss_kb.append(part.peak_rss_kb)
                        st.chunks += 1
                        done[0] += task.end - task.start
                        if progress is not None:
                            progress(done[0], known_total, builder.statements)
                else:
                    base = done[0]
                    read = [0]
                    cb = _reporter(progress, base, read, known_total)
                    for task in tasks:
                        builder.pos = task.chunk << CHUNK_SHIFT
                        _consume(builder, fmt, f.prefix, path, task.start, task.end, read,
                                 f.counts, cb)
                    done[0] = base + size
            else:
                builder.pos = chunk_no << CHUNK_SHIFT
                chunk_no += 1
                builder.consume(f.records, _reporter(progress, done[0], [0], known_total))
            st.bytes = done[0]
            if progress is not None:
                progress(done[0], known_total, builder.statements)
            builder.sources.append(path)
            f.finish(builder.statements - before)
            info = f.info()
            st.files.append(info)
            if files is not None:
                files.append(info)
            read_any = True
    except BaseException:
        if pool is not None:
            pool.terminate()  # do not wait for chunks nobody will read
            pool = None
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    profile = builder.finish()
    st.seconds = time.perf_counter() - started
    return profile


def _worker_pool(jobs: int):
    """A :mod:`multiprocessing` pool of ``jobs`` workers started by a fork server: a
    single-threaded process started afresh (it imports this module once) from which
    the workers are forked. Never forked from this process, where another thread (the
    progress bar's, a caller's) may hold a lock that a forked child would inherit held
    forever (Python 3.12 warns of it; 3.14 makes forkserver Linux's default). Costs
    ~0.15 s of start-up once per process instead of ~0.02 s with 2 workers. The
    workers do not import the caller's main module (:func:`_main_hidden`), so a script
    needs no ``if __name__ == "__main__":`` guard, as with fork. Spawn where there is
    no fork server (Windows)."""
    import multiprocessing
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])  # (taken when the fork server starts)
    else:  # pragma: no cover - Windows
        ctx = multiprocessing.get_context("spawn")
    with _main_hidden():
        return ctx.Pool(jobs)  # (its workers start here; they are never replaced)


@contextlib.contextmanager
def _main_hidden():
    """While workers start: the main module's ``__spec__`` and ``__file__`` out of
    sight, so that :mod:`multiprocessing` does not tell the workers to import it (as
    spawn does, to unpickle functions defined there). Ours run :func:`read_chunk` and
    need only this package; importing the main module would run a script again when it
    has no ``__main__`` guard, or fail for a script read from stdin, and the pool would
    then restart its workers forever."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _reporter(progress: Progress | None, base: int, read: list[int],
              total: int | None) -> Callable[[int], None] | None:
    """The builder's progress(statements) hook, reporting ``base + read[0]`` bytes."""
    if progress is None:
        return None

    def report(statements: int) -> None:
        progress(base + read[0], total, statements)
    return report


# -- a progress bar ------------------------------------------------------------------------
@contextlib.contextmanager
def progress_bar(stream=None, *, description: str = "reading logs"):
    """A rich progress bar (bytes read, MB/s, statements/s) drawn on ``stream``
    (default stderr) when it is a TTY; yields the :data:`Progress` callback to give the
    reader (a no-op when the stream is not a TTY)."""
    stream = stream if stream is not None else sys.stderr
    if not getattr(stream, "isatty", lambda: False)():
        yield lambda done, total, statements: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress as Bar, TextColumn,
                               TimeRemainingColumn, TransferSpeedColumn)
    started = time.perf_counter()
    bar = Bar(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
              TransferSpeedColumn(), TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
              console=Console(file=stream), transient=True)
    task = bar.add_task(description, total=None, rate="")

    def update(done: int, total: int | None, statements: int) -> None:
        elapsed = max(time.perf_counter() - started, 1e-9)
        bar.update(task, completed=done, total=total,
                   rate=f"{statements:,} statements, {statements / elapsed:,.0f}/s")

    with bar:
        yield update


# -- a command for benchmarks ----------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m auditor.collectors.querylog LOG... [--jobs N]``: read the logs with the
    full analysis (detectors on) and print a short JSON summary with the time taken,
    for benchmarks and quick looks (``auditor logs`` is the user-facing command)."""
    import argparse
    import json
    ap = argparse.ArgumentParser(prog="python -m auditor.collectors.querylog")
    ap.add_argument("logs", nargs="+")
    ap.add_argument("--jobs", type=int, default=None)
    args = ap.parse_args(argv)
    st = ReadStats()
    with progress_bar() as cb:
        profile = read_profile(args.logs, jobs=args.jobs, progress=cb, stats=st)
    print(json.dumps({
        "statements": profile.statements, "total_ms": round(profile.total_ms, 3),
        "fingerprints": len(profile.fingerprints), "sessions": profile.sessions,
        "requests": profile.request_count, "connections": profile.connections.connections,
        "loops": len(profile.loops), "redundant": len(profile.redundant),
        "skipped": profile.skipped, "seconds": round(st.seconds, 3),
        "mb_per_s": round(st.bytes / 2**20 / st.seconds, 1) if st.seconds else None,
        "jobs": st.jobs, "chunks": st.chunks, "chunks_reread": st.reread,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "worker_peak_rss_kb": max(st.worker_peak_rss_kb, default=None)}, indent=2))
    return 0
