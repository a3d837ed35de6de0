"""Opening query-log inputs: files, compressed files and standard input.

    src = open_input("postgresql.log.1.gz", skipped)    # or "-" for stdin
    src.sample          # the first ~64 KB, decompressed and decoded (for detection)
    for line in src.lines(): ...                         # every line, once

Compression is recognised by its magic bytes, never by the file name: gzip, bzip2, xz
and zstd (the ``zstandard`` package). ``-`` reads standard input (compressed or not);
it is read once, so its first 64 KB are kept for detection and replayed.

Text is decoded as UTF-8, PostgreSQL's usual server encoding. Bytes that are not UTF-8
(a LATIN1 database's statements, a log edited in another encoding) are read as U+FFFD
and counted in ``skipped`` under :data:`NOT_UTF8`; the lines are kept. A file whose
first 64 KB are mostly not UTF-8, or that holds binary data, is refused with a clear
error instead. A compressed stream that ends early (a ``.gz`` cut in half, a log still
being written) is read up to the cut and counted once under :data:`TRUNCATED`.

A line longer than :data:`MAX_LINE_CHARS` (4 MiB) is never held whole: as soon as it
passes that length it is dropped up to its end and replaced by a marker line
(:data:`LONG_LINE`, then a tab if the line was a continuation line), counted under
:data:`TOO_LONG`; the format readers drop the record that line belonged to (and a record
whose lines, each shorter, add up to more than the limit). A statement that long is
not one a workload profile can use (a bulk load, data inlined in the SQL) and holding
it costs about ten times its size (a 32 MB line took 316 MB).

Errors: :class:`~auditor.errors.TargetUnreachable` (missing file, a directory, no
permission, corrupt compressed data, binary data, not UTF-8 text).
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import lzma
import os
import sys
import threading
import zlib
from itertools import chain
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

from auditor.errors import TargetUnreachable

__all__ = ["STDIN", "SAMPLE_BYTES", "LogInput", "open_input", "compression_of",
           "TRUNCATED", "NOT_UTF8", "TOO_LONG", "MAX_LINE_CHARS", "LONG_LINE",
           "decoded_blocks", "decoded_lines"]

STDIN = "-"
SAMPLE_BYTES = 64 * 1024
_READ_BUFFER = 1 << 20

# skipped-line reasons (stable strings: tests and reports show them)
TRUNCATED = "truncated or corrupt compressed data (read up to the damage)"
NOT_UTF8 = "byte sequences that are not UTF-8, read as U+FFFD (lines kept)"
TOO_LONG = "record longer than 4 MiB (a statement too long to keep), skipped"

# The longest line (and record) read, in characters: 4 MiB. Longer ones are skipped
# (see the module docstring); the readers then hold at most about this much of a line.
MAX_LINE_CHARS = 4 << 20
# What replaces a line longer than MAX_LINE_CHARS: U+FDD0, a noncharacter (never in
# text, matches no log_line_prefix, is no JSON and has no CSV quote), followed by a tab
# when the line was a continuation line ("\t...").
LONG_LINE = "\ufdd0"

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_DECOMPRESS_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError)


# -- counting undecodable bytes without a per-line check -------------------------------
# The codec calls the handler only when it meets bytes that are not UTF-8, so valid text
# decodes at full C speed. The count goes to the input being read on this thread.
_tls = threading.local()


def _count_and_replace(exc: UnicodeError):
    box = getattr(_tls, "box", None)
    if box is not None:
        box[0] += 1
    return "\ufffd", exc.end  # type: ignore[attr-defined]


_ERRORS = "auditor-count-replace"
codecs.register_error(_ERRORS, _count_and_replace)


# -- compression --------------------------------------------------------------------------
def compression_of(head: bytes) -> str | None:
    """``gzip``, ``bzip2``, ``xz``, ``zstd`` or None, from a stream's first bytes."""
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh":
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[:4] == _ZSTD_MAGIC:
        return "zstd"
    return None


class _ZstdReader(io.RawIOBase):
    """A zstd stream (several frames allowed) as a raw byte stream; a stream that ends
    inside a frame raises EOFError like gzip/bz2/lzma do."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        try:
            import zstandard
        except ImportError:  # pragma: no cover - a declared dependency
            raise TargetUnreachable("reading .zst logs needs the zstandard package "
                                    "(pip install zstandard)") from None
        self._zstd = zstandard
        self._src = fileobj
        self._obj = zstandard.ZstdDecompressor().decompressobj()
        self._pending = b""
        self._in_frame = False
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._pending and not self._done:
            chunk = self._src.read(1 << 16)
            if not chunk:
                self._done = True
                if self._in_frame:
                    raise EOFError("zstd stream ended before the end of its frame")
                break
            try:
                out = self._feed(chunk)
            except self._zstd.ZstdError as exc:
                raise zlib.error(f"corrupt zstd data: {exc}") from None
            self._pending = out
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _feed(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            self._in_frame = True
            out.append(self._obj.decompress(chunk))
            if self._obj.eof:
                self._in_frame = False
                chunk = self._obj.unused_data
                self._obj = self._zstd.ZstdDecompressor().decompressobj()
            else:
                chunk = b""
        return b"".join(out)

    def close(self) -> None:
        try:
            self._src.close()
        finally:
            super().close()


def _decompressor(kind: str | None, raw: IO[bytes]) -> IO[bytes]:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "bzip2":
        return bz2.BZ2File(raw, "rb")
    if kind == "xz":
        return lzma.LZMAFile(raw, "rb")
    if kind == "zstd":
        return io.BufferedReader(_ZstdReader(raw), buffer_size=_READ_BUFFER)
    return raw


class _Replay(io.RawIOBase):
    """``head`` (bytes already read), then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: IO[bytes] | None) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        if self._stream is None:
            return 0
        data = self._stream.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        super().close()


# -- inputs -------------------------------------------------------------------------------
def _unreadable(name: str, why: str) -> TargetUnreachable:
    return TargetUnreachable(f"cannot read query log {name}: {why}")


def _open_raw(path: Path, name: str) -> IO[bytes]:
    try:
        return open(path, "rb", buffering=_READ_BUFFER)
    except FileNotFoundError:
        raise _unreadable(name, "no such file; check the path") from None
    except IsADirectoryError:
        raise _unreadable(name, "it is a directory; give the log files inside it") from None
    except PermissionError:
        raise _unreadable(name, "permission denied; run the auditor as a user who may read "
                                "the server's log directory, or copy the log") from None
    except OSError as exc:
        raise _unreadable(name, exc.strerror or str(exc)) from None


def _read_head(stream: IO[bytes], name: str) -> tuple[bytes, bool]:
    """Up to SAMPLE_BYTES from a (decompressing) stream; (data, ended early)."""
    parts: list[bytes] = []
    got = 0
    try:
        while got < SAMPLE_BYTES:
            chunk = stream.read(min(1 << 14, SAMPLE_BYTES - got))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
    except EOFError:  # a compressed stream cut short: keep what came out of it
        return b"".join(parts), True
    except _DECOMPRESS_ERRORS as exc:
        if not parts:
            raise _unreadable(name, f"the compressed data is corrupt ({exc})") from None
        return b"".join(parts), True
    return b"".join(parts), False


_CONTROL = bytes(c for c in range(32) if c not in (9, 10, 12, 13))


def _decode_sample(data: bytes, name: str) -> str:
    if b"\x00" in data or (data and len(data) - len(data.translate(None, _CONTROL))
                           > max(8, len(data) // 50)):
        raise _unreadable(name, "it holds binary data, not a PostgreSQL text log "
                                "(stderr, syslog, csvlog or jsonlog)")
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - (1 if text.endswith("\ufffd") else 0)  # a cut character
    if bad > max(8, len(text) // 100):
        raise _unreadable(name, "it is not UTF-8 text (more than 1% of its first 64 KB are "
                                "not UTF-8); convert it first, e.g. "
                                "iconv -f LATIN1 -t UTF-8 FILE > FILE.utf8")
    return text


class LogInput:
    """One opened log input. ``name``: what messages call it (the path, or ``stdin``);
    ``compression``: gzip, bzip2, xz, zstd or None; ``sample``: its first ~64 KB as
    text; ``mtime``: the file's modification time (epoch s; None for stdin), which dates
    syslog lines that carry no year. :meth:`lines` can be iterated once."""

    def __init__(self, name: str, compression: str | None, sample: str,
                 mtime: float | None, lines: Callable[[dict[str, int]], Iterator[str]]):
        self.name = name
        self.compression = compression
        self.sample = sample
        self.mtime = mtime
        self._lines = lines

    def lines(self, skipped: dict[str, int]) -> Iterator[str]:
        """Every line, newline kept (a last line may lack it); damage and undecodable
        bytes are counted in ``skipped``."""
        return self._lines(skipped)


def _cut(line: str, skipped: dict[str, int]) -> str:
    """The marker line that replaces an over-long ``line`` (see :data:`LONG_LINE`)."""
    skipped[TOO_LONG] = skipped.get(TOO_LONG, 0) + 1
    return LONG_LINE + "\t" if line[:1] == "\t" else LONG_LINE


def decoded_blocks(blocks: Iterable[bytes], skipped: dict[str, int], *,
                   errors: str = _ERRORS, max_chars: int = MAX_LINE_CHARS) -> Iterator[str]:
    """Byte blocks → text blocks of whole lines: UTF-8 (undecodable bytes go to the
    ``errors`` handler), universal newlines (``\r\n`` and a lone ``\r`` become
    ``\n``, as ``open(..., newline=None)`` reads them), each block ending with ``\n``
    but perhaps the last. A line longer than ``max_chars`` characters is replaced by
    its marker line (:data:`LONG_LINE`; counted under :data:`TOO_LONG` in ``skipped``)
    without ever being held whole: at most ``max_chars`` of it plus one block are."""
    dec = codecs.getincrementaldecoder("utf-8")(errors=errors)
    tail = ""  # the last line, unfinished (at most max_chars)
    skipping = False  # inside an over-long line: drop what comes up to its end
    cr = False  # the text so far ended with "\r", which may pair with a "\n"
    final = False
    for data in chain(blocks, (None,)):
        if data is None:
            text = dec.decode(b"", final=True)
            final = True
        else:
            text = dec.decode(data)
        if cr:
            text = "\r" + text
            cr = False
        if "\r" in text:
            if not final and text[-1] == "\r":
                text = text[:-1]
                cr = True
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if skipping:
            i = text.find("\n")
            if i < 0:
                continue
            text = text[i + 1:]
            skipping = False
        if tail:
            text = tail + text
            tail = ""
        cut = text.rfind("\n") + 1
        if cut < len(text):
            tail = text[cut:]
            text = text[:cut]
        if len(text) > max_chars:  # (rare: after a long unfinished line) one may be too long
            lines = text.split("\n")
            text = "\n".join(ln if len(ln) <= max_chars else _cut(ln, skipped)
                             for ln in lines)
        if len(tail) > max_chars:  # the unfinished line is too long already: cut it here
            text += _cut(tail, skipped) + "\n"
            tail = ""
            skipping = True
        if text:
            yield text
    if tail:
        yield tail


def decoded_lines(blocks: Iterable[bytes], skipped: dict[str, int], *, newline: bool = True,
                  errors: str = _ERRORS, max_chars: int = MAX_LINE_CHARS) -> Iterator[str]:
    """The lines of :func:`decoded_blocks`, each ending with ``\n`` but perhaps the last
    (``newline=False``: without it)."""
    for block in decoded_blocks(blocks, skipped, errors=errors, max_chars=max_chars):
        lines = block.split("\n")
        last = lines.pop()  # "" after a final newline, else the last line (no newline)
        if newline:
            for ln in lines:
                yield ln + "\n"
        else:
            yield from lines
        if last:
            yield last


def _read1_blocks(binary: IO[bytes]) -> Iterator[bytes]:
    """A (decompressing) stream as byte blocks of up to _READ_BUFFER. ``read1`` makes at
    most one read of the stream below, so what a damaged stream gave before the damage
    comes out before the error does."""
    read = getattr(binary, "read1", None) or binary.read
    while True:
        data = read(_READ_BUFFER)
        if not data:
            return
        yield data


def _text_lines(binary: IO[bytes], skipped: dict[str, int],
                closing: tuple[IO[bytes], ...] = ()) -> Iterator[str]:
    box = [0]
    prev = getattr(_tls, "box", None)
    _tls.box = box
    try:
        # damage ends it after the last whole line (the line it cuts is not read)
        yield from decoded_lines(_read1_blocks(binary), skipped)
    except _DECOMPRESS_ERRORS:
        skipped[TRUNCATED] = skipped.get(TRUNCATED, 0) + 1
    finally:
        _tls.box = prev
        if box[0]:
            skipped[NOT_UTF8] = skipped.get(NOT_UTF8, 0) + box[0]
        for f in (binary, *closing):
            try:
                f.close()
            except _DECOMPRESS_ERRORS:
                pass


def open_input(path: "str | os.PathLike") -> LogInput:
    """Open ``path`` (``-``: standard input) and read its sample. Raises
    TargetUnreachable (see the module docstring)."""
    if str(path) == STDIN:
        return _open_stdin()
    p = Path(path)
    name = str(path)
    raw = _open_raw(p, name)
    try:
        kind = compression_of(raw.peek(8)[:8])
        stream = _decompressor(kind, raw)
        head, cut = _read_head(stream, name)
    finally:
        raw.close()
    sample = _decode_sample(head, name)
    try:
        mtime = p.stat().st_mtime
    except OSError:
        mtime = None

    def lines(skipped: dict[str, int]) -> Iterator[str]:
        raw2 = _open_raw(p, name)  # opened when the first line is asked for
        yield from _text_lines(_decompressor(kind, raw2) if kind else raw2, skipped, (raw2,))

    return LogInput(name, kind, sample, mtime, lines)


def _open_stdin() -> LogInput:
    raw = sys.stdin.buffer
    if not isinstance(raw, io.BufferedReader):
        raw = io.BufferedReader(raw, buffer_size=_READ_BUFFER)  # type: ignore[arg-type]
    try:
        kind = compression_of(raw.peek(8)[:8])
    except (OSError, ValueError) as exc:
        raise _unreadable("stdin", f"cannot read standard input ({exc})") from None
    stream = _decompressor(kind, raw)
    head, cut = _read_head(stream, "stdin")
    sample = _decode_sample(head, "stdin")
    used = [False]

    def lines(skipped: dict[str, int]) -> Iterator[str]:
        if used[0]:
            raise _unreadable("stdin", "standard input can be read only once")
        used[0] = True
        if cut:
            skipped[TRUNCATED] = skipped.get(TRUNCATED, 0) + 1
        replay = _Replay(head, None if cut else stream)
        return _text_lines(io.BufferedReader(replay, buffer_size=_READ_BUFFER), skipped)

    return LogInput("stdin", kind, sample, None, lines)
