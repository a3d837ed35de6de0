"""The README stays true: its rule table is generated from rules.yaml, and
.ci/run runs exactly its test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def block(marker: str) -> str:
    m = re.search(rf"<!-- {marker} -->\n(.*?)<!-- /{marker} -->", README, re.S)
    assert m, f"README lacks the {marker} block"
    return m.group(1)


def test_rule_table_matches_rules_yaml():
    res = subprocess.run([sys.executable, "-m", "auditor", "rules", "--markdown"],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert block("rules").strip() == res.stdout.strip(), \
        "README rule table is stale: regenerate it with `auditor rules --markdown`"


def test_quickstart_is_two_commands():
    demo = [l for l in block("demo-command").splitlines() if l and not l.startswith("```")]
    test = [l for l in block("test-command").splitlines() if l and not l.startswith("```")]
    assert len(demo) == 1 and demo[0].endswith("auditor demo")
    assert len(test) == 1 and "pytest" in test[0]
    assert "test-command" in (ROOT / ".ci" / "run").read_text()


def test_readme_python_examples_run_as_written():
    import doctest
    examples = re.findall(r"```python\n(>>> .*?)```", README, re.S)
    assert examples, "the README's fingerprint example is gone"
    for text in examples:
        test = doctest.DocTestParser().get_doctest(text, {}, "README", "README.md", 0)
        result = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE).run(test)
        assert result.failed == 0
