"""Reporters render a finished :class:`~auditor.model.Report`; they never judge.

File reporters (``json``, ``html``) are modules with ``write(report, path)``;
the terminal reporter has ``render(report, console)``. Each one redacts what it
prints or writes (through :func:`auditor.reporters.json.to_dict`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from auditor.model import Report


class Reporter(Protocol):
    """What a file reporter module provides (``auditor.reporters.json``, ``.html``)."""

    def write(self, report: Report, path: str | Path) -> Path:
        """Write ``report`` to ``path`` (parents created); return the path written."""
        ...
