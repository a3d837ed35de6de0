"""Build hook: compile the optional C extension (auditor/_speedups.c).

setuptools' build_ext does the compiling (it knows every platform's compiler and
flags). Without a C compiler or the Python headers the build goes on and the wheel is
pure Python: the log engine then runs its Python path, with the same results, slower
(see auditor/collectors/querylog/scan.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MODULE = "auditor._speedups"
SOURCE = "auditor/_speedups.c"


class CExtensionHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        built = self._build()
        if built is None:
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":  # an editable install imports it from the tree
            rel = built.relative_to(self.root).as_posix()
            build_data["force_include"][str(built)] = rel

    def _build(self) -> Path | None:
        try:
            from setuptools import Distribution, Extension
            from setuptools.command.build_ext import build_ext
        except ImportError as exc:
            self._warn(f"setuptools missing ({exc})")
            return None
        here = os.getcwd()
        os.chdir(self.root)
        try:
            dist = Distribution({"name": "auditor-ext", "ext_modules": [
                Extension(MODULE, [SOURCE], extra_compile_args=["-O2"]
                          if sys.platform != "win32" else [])]})
            cmd = build_ext(dist)
            cmd.inplace = True
            cmd.ensure_finalized()
            cmd.run()
            return Path(self.root) / cmd.get_ext_fullpath(MODULE)
        except Exception as exc:  # no compiler, no headers: a pure-Python wheel
            self._warn(str(exc))
            return None
        finally:
            os.chdir(here)

    def _warn(self, why: str) -> None:
        print(f"auditor: the C log scanner was not built ({why}); the log engine "
              "will run in pure Python (same results, slower)", file=sys.stderr)
