"""The leave-one-category-out bookkeeping: which examples a unit holds out, and the model
card's table built from the runs' summaries (the runs themselves are `make loco`)."""

from __future__ import annotations

from export.data import Example
from export.loco import left_out, loco_table


def summary(accuracy: float, others: float) -> dict[str, object]:
    return {
        "category": {"n": 400, "accuracy": accuracy},
        "other_categories": others,
        "zh_dev": 0.9,
        "en_binary": 0.9,
        "en_macro_f1": 0.6,
    }


def test_left_out_units() -> None:
    zh = Example("好", 2, source="zh_shopping", group="书籍")
    en = Example("good", 2, source="en_clothing", group="Dresses")
    assert left_out(zh, "书籍") and not left_out(zh, "水果")
    assert left_out(en, "en_clothing") and not left_out(en, "en_alexa")
    assert not left_out(en, "Dresses")  # English units are whole corpora, not their groups


def test_loco_table_rows() -> None:
    published = {
        "category": "书籍",
        "loco": summary(0.90, 0.92),
        "reference": summary(0.93, 0.92),
        "adapted": summary(0.925, 0.915),
        "adapted_replay": summary(0.92, 0.92),
        "adapt": {
            "current": {"macro_f1": 0.81},
            "candidate": {"macro_f1": 0.86},
            "gain": {"gain": 0.05, "lower_bound": 0.02},
        },
        "adapt_replay": {  # its int8 export missed the floor: packaged in float32
            "current": {"macro_f1": 0.81},
            "candidate": {"macro_f1": 0.84},
            "gain": {"gain": 0.03, "lower_bound": -0.01},
            "precision": "float32",
        },
    }
    failed = {"category": "水果", "loco": summary(0.95, 0.92), "adapt": {"error": "too few"}}
    table = loco_table([published, failed]).splitlines()
    assert len(table) == 4
    assert table[2] == (
        "| 书籍 | 400 | 90.0 | 93.0 | 92.5 (+2.5) | 92.0 (+2.0) fp32 | 92.0 → 91.5 / 92.0 "
        "| 0.810 → 0.860 (+0.050, +0.020) / 0.810 → 0.840 (+0.030, -0.010) |"
    )
    assert table[3] == "| 水果 | 400 | 95.0 | – | – | – | 92.0 → – / – | failed: too few / – |"
