"""A plugin that (wrongly) registers a built-in rule id: must be a hard error."""

from auditor.check import BaseCheck


class Shadow(BaseCheck):
    rule_id = "PG101"

    def run(self, facts, params):
        return ()
