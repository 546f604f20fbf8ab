"""The spike benchmark's accounting on small seeded runs (``reviewpulse simulate``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from streams.alerts.calibration import T0_MS
from streams.alerts.settings import AlertSettings
from streams.cli import main
from streams.tools.simulate.accounting import evaluate
from streams.tools.simulate.corpus import Corpus, Text, load_corpus
from streams.tools.simulate.detectors import (
    Firing,
    threshold_over,
    trailing_share,
    window_alpha,
)
from streams.tools.simulate.run import parse_settings, run_simulation
from streams.tools.simulate.streams import DAY_MS, HOUR_MS, SimConfig, simulate_streams
from streams.tools.simulate.windows import window_matrix

SETTINGS = AlertSettings()


def _pool(prefix: str, n: int) -> tuple[Text, ...]:
    return tuple(Text(f"{prefix}:{i}", f"{prefix} review {i}") for i in range(n))


CORPUS = Corpus(
    negative={"a": _pool("a-neg", 5), "b": _pool("b-neg", 5)},
    other={"a": _pool("a-pos", 20), "b": _pool("b-pos", 20)},
    product_shares=(0.05, 0.1, 0.15),
)
SMALL = SimConfig(products=40, days=10, warmup_days=4, sizes=(60,), spiked=0.25)


def test_streams_hold_the_steady_reviews_and_every_injected_negative() -> None:
    streams = simulate_streams(CORPUS, SMALL)
    assert len(streams.spikes) == 10
    assert int(streams.injected.sum()) == 10 * 60
    assert bool(streams.negative[streams.injected].all())
    assert np.all(np.diff(streams.product) >= 0)
    for s in streams.spikes:
        lo, hi = streams.span(s.product)
        at = streams.ts_ms[lo:hi][streams.injected[lo:hi]]
        assert (int(at.min()), int(at.max()) + 1) == (s.start_ms, s.end_ms)
        assert s.start_ms >= T0_MS + SMALL.warmup_days * DAY_MS
        assert s.end_ms - s.start_ms <= SMALL.spike_hours * HOUR_MS
    # Every review is a real one of its category and polarity.
    for i in range(0, len(streams.ts_ms), 97):
        t = streams.text(i)
        category = streams.category_of(int(streams.product[i]))
        assert t.ref.startswith(f"{category}-{'neg' if streams.negative[i] else 'pos'}:")
    n, k = window_matrix(streams, 24 * HOUR_MS)
    assert n.shape == (SMALL.products, SMALL.days)
    assert int(n.sum()) == len(streams.ts_ms) and int(k.sum()) == int(streams.negative.sum())


def test_large_spikes_are_detected_by_the_detector() -> None:
    report = run_simulation(CORPUS, SMALL, SETTINGS, methods=("detector",))
    detector = report.result("detector")
    assert detector.rate(60) == (10, 10)
    delay = detector.median_delay(target=False)
    assert delay is not None and 0 < delay["minutes"] <= 24 * 60
    assert report.example_alert is not None and report.example_alert["status"] == "firing"
    assert report.example_alert["evidence"]  # real negative texts of the window


def test_without_spikes_every_product_episode_is_a_false_alert() -> None:
    quiet = SimConfig(products=40, days=10, warmup_days=4, spiked=0.0)
    streams = simulate_streams(CORPUS, quiet)
    assert streams.spikes == ()
    firings = [
        Firing(3, None, T0_MS, T0_MS + HOUR_MS),
        Firing(3, None, T0_MS + DAY_MS, T0_MS + 2 * DAY_MS),
        Firing(None, "a", T0_MS, T0_MS + DAY_MS),
    ]
    result = evaluate(streams, "any", firings, [])
    assert (result.false_alerts, result.category_alerts, result.category_false_alerts) == (2, 1, 1)
    assert result.false_per_1000() == pytest.approx(2000 / streams.product_days())
    assert result.rate() == (0, 0) and result.median_delay() is None
    # With no launches, product-days are products × days.
    flat = simulate_streams(CORPUS, SimConfig(products=40, days=10, spiked=0, new_products=0))
    assert flat.product_days() == 400


def test_a_firing_over_the_spike_detects_it_and_its_delay_is_counted() -> None:
    streams = simulate_streams(CORPUS, SMALL)
    spike = streams.spikes[0]
    p = spike.product
    hour = (spike.start_ms - T0_MS) // HOUR_MS
    window = (T0_MS + (hour + 1) * HOUR_MS, T0_MS + (hour + 2) * HOUR_MS)  # the second hour
    other = next(q for q in range(SMALL.products) if q not in {s.product for s in streams.spikes})
    firings = [
        Firing(p, None, *window),
        Firing(p, None, T0_MS, T0_MS + HOUR_MS),  # before the spike: false
        Firing(other, None, *window),  # a product without a spike: false
    ]
    result = evaluate(streams, "hand", firings, [True] * len(streams.spikes))
    first = result.outcomes[0]
    assert first.detected and first.delay_windows == 2
    assert first.delay_minutes == (window[1] - spike.start_ms) / 60_000
    assert first.delay_reviews == streams.reviews_between(p, spike.start_ms, window[1])
    assert first.delay_reviews is not None and first.delay_reviews >= 1
    assert result.rate() == (1, 10) and result.rate(target=True) == (1, 10)
    assert result.false_alerts == 2


def test_the_run_is_deterministic_in_its_seed() -> None:
    config = SimConfig(products=30, days=8, warmup_days=3, sizes=(5, 30), spiked=0.4)
    first = run_simulation(CORPUS, config, SETTINGS).to_json()
    again = run_simulation(CORPUS, config, SETTINGS).to_json()
    other = run_simulation(CORPUS, SimConfig(**{**config.__dict__, "seed": 1}), SETTINGS)
    assert first == again
    assert first["results"] != other.to_json()["results"] or first["reviews"] != other.reviews
    assert [r["method"] for r in first["results"]] == [
        "detector",
        "plugin-binomial",
        "plain-binomial",
        "threshold",
        "oracle-binomial",
    ]


def test_window_rules() -> None:
    n = np.array([[10, 10, 10, 4, 10]], np.int64)
    k = np.array([[1, 1, 4, 4, 3]], np.int64)
    assert threshold_over(n, k).tolist() == [[False, False, True, False, False]]
    share = trailing_share(n, k, history_windows=2)
    assert np.isnan(share[0, 0])
    assert share[0, 1] == pytest.approx(1.5 / 11)
    assert share[0, 3] == pytest.approx((1 + 4 + 0.5) / 21)


def test_the_rules_spend_alpha_on_what_their_test_can_reach() -> None:
    """One product with 4 reviews at a 5 % share could fire; 30 with one review at 10 % cannot."""
    n = np.array([[4], *[[1]] * 30, [0]], np.int64)
    share = np.array([[0.05], *[[0.1]] * 30, [np.nan]])
    budget = SETTINGS.false_alerts_per_day / 2 / 24  # an hour of two window sizes
    assert window_alpha(n, share, SETTINGS, HOUR_MS).tolist() == [budget]


def test_settings_overrides() -> None:
    settings = parse_settings(["pending_for=1h", 'windows=["1h","6h","24h"]'])
    assert settings.pending_for == "1h" and settings.windows == ["1h", "6h", "24h"]
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_settings(["pending_for"])


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    clothing = ["rating", "sentiment", "title", "review", "recommended", "clothing_id"]
    clothing += ["division", "department", "class_name"]
    rows: list[list[object]] = []
    for item in range(2):
        for i in range(40):
            rating = 1 if i % 10 == 0 else 5
            rows.append([rating, "", "", f"dress {item} {i}", 1, item, "G", "Dresses", "D"])
    rows.append([2, "negative", "", "no department", 0, 9, "G", "", ""])
    _write(tmp_path / "en_womens_clothing_reviews.csv", clothing, rows)
    shopping = [["书籍", i % 2, f"书 {i}"] for i in range(20)]
    _write(tmp_path / "online_shopping_10_cats_train.csv", ["cat", "label", "review"], shopping)
    _write(tmp_path / "online_shopping_10_cats_dev.csv", ["cat", "label", "review"], shopping[:4])
    return tmp_path


def test_the_corpus_reads_both_datasets(data_dir: Path) -> None:
    corpus = load_corpus(data_dir)
    assert corpus.categories == ("Dresses", "书籍")
    assert len(corpus.negative["Dresses"]) == 8 and len(corpus.other["Dresses"]) == 72
    assert len(corpus.negative["书籍"]) == 12 and len(corpus.other["书籍"]) == 12
    assert corpus.negative["书籍"][0].ref == "online_shopping_10_cats_train.csv:2"
    assert corpus.product_shares == pytest.approx(((4 + 0.5) / 41, (4 + 0.5) / 41))


def test_the_command_prints_the_table_and_json(data_dir: Path) -> None:
    args = ["simulate", "--products", "20", "--days", "8", "--warmup-days", "3"]
    args += ["--data", str(data_dir), "--sizes", "40"]
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0, table.output
    assert "| detector |" in table.output and "dataset" in table.output
    out = CliRunner().invoke(main, [*args, "--json", "--set", "pending_for=1h"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["settings"]["pending_for"] == "1h"
    assert report["config"]["products"] == 20
