"""Model packages committed for the tests."""

from __future__ import annotations

from pathlib import Path

#: A 2-layer, 32-wide zh+en sentiment model (fp32, ~180 kB) built by ``export.tiny``:
#: ``make tiny-fixture`` rebuilds it, ``tests/export/test_tiny_fixture.py`` proves that
#: the export code still builds the same model.
TINY_PACKAGE = Path(__file__).resolve().parent / "fixtures" / "tiny-package"
