"""Exit 1 unless this interpreter runs with the export extra blocked (``make unit-runtime``).

Guards against a run that would pass vacuously: ``sitecustomize`` must be the one in
``tests/runtime_only`` (not another one earlier on the path), and every package of
the export extra must fail to import.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main() -> int:
    try:
        import sitecustomize
    except ImportError:
        sitecustomize = None
    here = Path(__file__).resolve().parent
    origin = getattr(sitecustomize, "__file__", None)
    if origin is None or Path(origin).resolve().parent != here:
        print(f"sitecustomize is {origin}, not the one in {here}", file=sys.stderr)
        return 1
    importable = []
    for name in sitecustomize.BLOCKED:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        importable.append(name)
    if importable:
        print(f"still importable: {', '.join(importable)}", file=sys.stderr)
        return 1
    print(f"export extra blocked: {', '.join(sitecustomize.BLOCKED)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
