"""The streams counted into tumbling windows, the one input every method shares. Reviews and
negatives per product and window, as matrices (for the per-window rules) and as the alert
engine's :class:`~streams.alerts.engine.WindowCount` records, per product and per category.
"""

from __future__ import annotations

import numpy as np

from streams.alerts.calibration import T0_MS
from streams.alerts.engine import WindowCount
from streams.alerts.settings import AlertSettings
from streams.tools.simulate.streams import DAY_MS, Ints, Streams


def window_matrix(streams: Streams, length_ms: int) -> tuple[Ints, Ints]:
    """Reviews and negatives per product (rows) and window of ``length_ms`` (columns)."""
    if DAY_MS % length_ms:
        raise ValueError("alert windows must divide a day")
    windows = streams.config.days * DAY_MS // length_ms
    cell = streams.product * windows + (streams.ts_ms - T0_MS) // length_ms
    size = streams.config.products * windows
    n = np.bincount(cell, minlength=size).reshape(-1, windows).astype(np.int64)
    k = np.bincount(cell, weights=streams.negative, minlength=size).reshape(-1, windows)
    return n, k.round().astype(np.int64)


def window_counts(streams: Streams, settings: AlertSettings) -> list[WindowCount]:
    """The engine's input: a record per product and per category with reviews in a window."""
    records: list[WindowCount] = []
    n_categories = len(streams.categories)
    for length_ms in settings.window_lengths_ms().values():
        n, k = window_matrix(streams, length_ms)
        cn = np.zeros((n_categories, n.shape[1]), np.int64)
        ck = np.zeros_like(cn)
        np.add.at(cn, streams.product_category, n)
        np.add.at(ck, streams.product_category, k)
        for w in range(n.shape[1]):
            start, end = T0_MS + w * length_ms, T0_MS + (w + 1) * length_ms
            for p in np.flatnonzero(n[:, w]).tolist():
                records.append(
                    WindowCount(
                        "product",
                        streams.product_id(p),
                        streams.category_of(p),
                        start,
                        end,
                        int(n[p, w]),
                        int(k[p, w]),
                    )
                )
            for c in np.flatnonzero(cn[:, w]).tolist():
                name = streams.categories[c]
                records.append(
                    WindowCount("category", name, name, start, end, int(cn[c, w]), int(ck[c, w]))
                )
    return records
