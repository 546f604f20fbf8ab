"""The outcome of one run and its two outputs, the comparison table and the JSON.
:class:`Report` holds every method's result and checks the issue's three targets for the
detector; :func:`format_report` prints the markdown table of detection rates by spike size and
for the target class, false alerts and median delays, then the category alerts and the targets,
and :meth:`Report.to_json` gives the same for ``--json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.alerts.settings import AlertSettings
from streams.tools.simulate.accounting import TARGET_FACTOR, TARGET_REVIEWS, MethodResult
from streams.tools.simulate.streams import SimConfig


@dataclass(frozen=True)
class Report:
    config: SimConfig
    settings: AlertSettings
    reviews: int
    injected: int
    categories: int
    results: tuple[MethodResult, ...]
    example_alert: dict[str, Any] | None

    def result(self, method: str) -> MethodResult:
        return next(r for r in self.results if r.method == method)

    def targets_met(self) -> dict[str, bool | None]:
        """The issue's three targets, for the detector."""
        det = self.result("detector")
        found, total = det.rate(target=True)
        delay = det.median_delay(target=True)
        return {
            "target_class_detected_ge_95pct": found / total >= 0.95 if total else None,
            "false_alerts_le_1_per_1000_product_days": det.false_per_1000() <= 1.0,
            "median_delay_le_1_window": delay["windows"] <= 1.0 if delay else None,
        }

    def to_json(self) -> dict[str, Any]:
        c = self.config
        return {
            "labels": "dataset labels stand in for the model (negative = rating <= 2 / label 0)",
            "config": {
                "products": c.products,
                "days": c.days,
                "warmup_days": c.warmup_days,
                "seed": c.seed,
                "reviews_per_day": list(c.reviews_per_day),
                "spiked": c.spiked,
                "sizes": list(c.sizes),
                "spike_hours": c.spike_hours,
                "new_products": c.new_products,
            },
            "settings": self.settings.model_dump(),
            "reviews": self.reviews,
            "injected": self.injected,
            "categories": self.categories,
            "target_class": f"a window overlapping the spike with >= {TARGET_REVIEWS} reviews "
            f"and a negative share >= {TARGET_FACTOR:g} x the steady share",
            "results": [r.to_json(c.sizes) for r in self.results],
            "targets_met": self.targets_met(),
            "example_alert": self.example_alert,
        }


def _pct(found: int, total: int) -> str:
    return f"{100.0 * found / total:.0f} % ({found}/{total})" if total else "–"


def format_report(report: Report) -> str:
    """The comparison table (markdown) and the detector's spikes by size."""
    c, sizes = report.config, report.config.sizes
    lines = [
        f"{c.products} products, {report.categories} categories, {c.days} days "
        f"({c.warmup_days} warm-up), {report.reviews:,} real reviews "
        f"({report.injected:,} injected in {len(report.results[0].outcomes)} spikes "
        f"over {c.spike_hours:g} h), seed {c.seed}; windows {', '.join(report.settings.windows)}",
        "negatives are the datasets' labels (rating ≤ 2 / label 0), not model output",
        "",
        "| method | "
        + " | ".join(f"{s} injected" for s in sizes)
        + " | target class (×3, ≥ 20) | false alerts / 1,000 product-days "
        "| median delay, target class (min · reviews · windows) |",
        "|---|" + "---:|" * (len(sizes) + 3),
    ]
    for r in report.results:
        delay = r.median_delay(target=True)
        delay_s = (
            f"{delay['minutes']:.0f} · {delay['reviews']:.0f} · {delay['windows']:g}"
            if delay
            else "–"
        )
        lines.append(
            f"| {r.method} | "
            + " | ".join(_pct(*r.rate(s)) for s in sizes)
            + f" | {_pct(*r.rate(target=True))} | {r.false_per_1000():.2f} ({r.false_alerts}) "
            f"| {delay_s} |"
        )
    lines.append("")
    for r in report.results:
        if r.method in ("detector", "plugin-binomial"):
            lines.append(
                f"{r.method}: category alerts {r.category_alerts}, of them without a spike in "
                f"the category {r.category_false_alerts} ({r.category_days} category-days)"
            )
    met = report.targets_met()
    lines.append("targets (detector): " + ", ".join(f"{k} {v}" for k, v in met.items()))
    return "\n".join(lines)
