"""A third-party check, packaged the way any plugin author would do it."""

from auditor.check import BaseCheck
from auditor.model import Finding


class TooManyHttpTargets(BaseCheck):
    rule_id = "EXM101"
    requires = ("source",)
    rule = {
        "slug": "example-source-size",
        "title": "Example plugin: the source tree has Python files",
        "severity": "high",
        "milestone": "1k",
        "category": "Application",
        "why": "Shows that third-party checks reach the report.",
        "fix": "Nothing to fix; this is an example.",
    }

    def run(self, facts, params):
        n = facts.source.files_scanned
        if n:
            yield Finding(self.rule_id, f"example plugin saw {n} Python files", "nothing", key="files")
