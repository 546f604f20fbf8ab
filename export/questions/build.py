"""``reviewpulse export questions``: train, calibrate, evaluate and package the question model.

Protocol (seeded, deterministic given the embeddings):

1. Embed every question and KB text with each candidate encoder (``query: `` for
   questions; KB questions under ``query: `` and ``passage: ``, answers under ``passage: ``)
   through the serving runtime; embeddings are cached in ``build/questions-cache``.
2. Head: softmax regression on the *train* split (Bitext train, project zh train, project
   English out-of-scope train), a small grid (zh sample weight × L2) chosen on the *dev*
   split (mean of en and zh dev accuracy); the ``other`` threshold is tuned on dev too.
3. KB side (which embeddings represent an entry: KB questions under ``query: `` or
   ``passage: ``, answers under ``passage: ``, or questions + answer) chosen on dev recall@1
   of pure embedding retrieval; then the blend with the head's probability of the entry's
   intent (``intent_weight``) on dev recall@1; then the answer gate and threshold on dev:
   the highest coverage with precision-when-answering >= 0.95.
4. Test metrics (never used for a choice) through :class:`models.questions.QuestionModel`;
   speed at batch 32 on the test questions in a seeded random order, encoders benchmarked
   in alternating rounds.
5. The package is written for the encoder given as ``encoder``; the others are compared.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from export.errors import ExportError
from export.questions.corpus import Corpus, KbVectors, load_corpus
from export.questions.data import OTHER, PROJECT_DATA, bitext_intents
from export.questions.encode import bench, open_encoder
from export.questions.evaluate import (
    ANSWER_PRECISION_TARGET,
    answer_metrics,
    decide,
    faq_subset,
    intent_metrics,
    ranking_metrics,
    run_model,
    tune_answer,
    tune_other_threshold,
)
from export.questions.head import HeadConfig, train_head
from export.questions.kb import dump_kb
from models.package import MANIFEST, MANIFEST_DIGEST, manifest_digest, sha256_file
from models.questions import (
    HEAD_FILE,
    KB_FILE,
    KB_VECTORS_FILE,
    TASK,
    FaqEntry,
    FaqIndex,
    Gate,
    IntentHead,
    QuestionModel,
)

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]
ANSWER_CURVE = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9)
KB_SIDES = ("questions_query", "questions_passage", "answers_passage", "questions_query+answers")


@dataclass(frozen=True)
class QuestionsConfig:
    """Settings of one ``export questions`` run."""

    seed: int = 13
    zh_weights: tuple[float, ...] = (1.0, 5.0)
    l2s: tuple[float, ...] = (1e-4, 1e-2)
    intent_weights: tuple[float, ...] = (0.0, 0.5)
    en_kb_questions: int = 16
    bench_rounds: int = 3
    steps: int = 400
    answer_target: float = ANSWER_PRECISION_TARGET
    bench_batch: int = 32
    bench_repeats: int = 3
    threads: int = 2


@dataclass
class Trained:
    """What one encoder's run produced (for the package writer)."""

    corpus: Corpus
    labels: list[str]
    weights: FloatArray
    bias: FloatArray
    other_threshold: float
    kb_side: str
    intent_weight: float
    faq: FaqIndex
    gate: Gate
    answer_threshold: float
    report: dict[str, Any]


def _entries(kb: KbVectors) -> list[FaqEntry]:
    return [
        FaqEntry(e.id, e.language, e.answer, e.questions, e.intent, e.category, e.scope or None)
        for e in kb.entries
    ]


def _kb_rows(kb: KbVectors, side: str) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    n = len(kb.entries)
    answers_owner = np.arange(n, dtype=np.int64)
    if side == "questions_query":
        vectors, owner = kb.questions_query, kb.owner
    elif side == "questions_passage":
        vectors, owner = kb.questions_passage, kb.owner
    elif side == "answers_passage":
        vectors, owner = kb.answers_passage, answers_owner
    else:
        vectors = np.concatenate([kb.questions_query, kb.answers_passage])
        owner = np.concatenate([kb.owner, answers_owner])
    order = np.argsort(owner, kind="stable")
    return vectors[order], owner[order]


def build_faq(kbs: Sequence[KbVectors], side: str) -> FaqIndex:
    """One index over several KBs with the entry rows of ``side``."""
    entries: list[FaqEntry] = []
    vectors, owners = [], []
    for kb in kbs:
        v, o = _kb_rows(kb, side)
        vectors.append(v)
        owners.append(o + len(entries))
        entries.extend(_entries(kb))
    return FaqIndex(entries, np.concatenate(vectors), np.concatenate(owners))


def train_and_evaluate(corpus: Corpus, labels: list[str], config: QuestionsConfig) -> Trained:
    """Train, calibrate on dev and evaluate on test with one encoder's embeddings."""
    qs = corpus.questions
    x = corpus.vectors
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[q.intent] for q in qs], dtype=np.int64)
    split = np.array([q.split for q in qs])
    lang = np.array([q.lang for q in qs])
    gold = np.array([q.intent for q in qs])
    train, dev, test = split == "train", split == "dev", split == "test"
    report: dict[str, Any] = {"encoder": corpus.encoder, "encoder_dir": str(corpus.encoder_dir)}

    # 1. head: grid on dev
    started = time.perf_counter()
    grid: list[dict[str, Any]] = []
    for zh_weight in config.zh_weights:
        for l2 in config.l2s:
            w = np.where(lang == "zh", zh_weight, 1.0).astype(np.float32)
            head_cfg = HeadConfig(l2=l2, steps=config.steps, seed=config.seed)
            weights, bias = train_head(x[train], y[train], len(labels), w[train], head_cfg)
            pred = np.array(labels)[(x[dev] @ weights + bias).argmax(axis=1)]
            acc = {
                lg: float((pred[lang[dev] == lg] == gold[dev][lang[dev] == lg]).mean())
                for lg in ("en", "zh")
            }
            grid.append(
                {
                    "zh_weight": zh_weight,
                    "l2": l2,
                    "dev_en": round(acc["en"], 4),
                    "dev_zh": round(acc["zh"], 4),
                    "dev_mean": round((acc["en"] + acc["zh"]) / 2, 4),
                    "_w": (weights, bias),
                }
            )
    chosen = max(grid, key=lambda g: g["dev_mean"])  # first of equals
    weights, bias = chosen["_w"]
    report["head"] = {
        "type": "softmax regression on standardised embeddings (numpy, full-batch Adam)",
        "steps": config.steps,
        "seed": config.seed,
        "grid_dev": [{k: v for k, v in g.items() if k != "_w"} for g in grid],
        "chosen": {"zh_weight": chosen["zh_weight"], "l2": chosen["l2"]},
        "train_n": {lg: int((train & (lang == lg)).sum()) for lg in ("en", "zh")},
        "train_seconds_grid": round(time.perf_counter() - started, 1),
    }
    # English-only head with the chosen settings: how far the encoder transfers to zh alone
    en_only = train & (lang == "en")
    w_en, b_en = train_head(
        x[en_only],
        y[en_only],
        len(labels),
        np.ones(int(en_only.sum()), np.float32),
        HeadConfig(l2=chosen["l2"], steps=config.steps, seed=config.seed),
    )

    # 2. other threshold on dev
    probs_dev = _softmax(x[dev] @ weights + bias)
    other_t, other_dev = tune_other_threshold(probs_dev, gold[dev], lang[dev], labels)
    report["other_threshold"] = {"value": other_t, "dev_mean_accuracy": other_dev}
    head = IntentHead(weights, bias, labels, other_threshold=other_t)

    # 3. KB side and intent blend on dev (recall@1, language-restricted, mean of en and zh)
    kbs = [corpus.kb_en, corpus.kb_zh]
    candidates: list[dict[str, Any]] = []
    for intent_weight in config.intent_weights:
        for side in KB_SIDES:
            trial = QuestionModel(
                head, build_faq(kbs, side), answer_threshold=1.0, intent_weight=intent_weight
            )
            scores = trial.entry_scores(x[dev], list(lang[dev]))
            intents_ = [e.intent for e in trial.faq.entries]
            per = {
                lg: ranking_metrics(
                    scores[lang[dev] == lg], intents_, list(gold[dev][lang[dev] == lg])
                )
                for lg in ("en", "zh")
            }
            mean_r1 = (per["en"]["recall_at_1"] + per["zh"]["recall_at_1"]) / 2
            candidates.append(
                {
                    "kb_side": side,
                    "intent_weight": intent_weight,
                    "dev": per,
                    "dev_mean_recall_at_1": round(mean_r1, 4),
                }
            )
    # the side by pure-embedding recall (which representation retrieves best), then the
    # blend for that side; ties go to the earlier candidate (less blending)
    pure = [c for c in candidates if c["intent_weight"] == 0.0] or candidates
    kb_side = str(max(pure, key=lambda c: c["dev_mean_recall_at_1"])["kb_side"])
    best_kb = max(
        (c for c in candidates if c["kb_side"] == kb_side),
        key=lambda c: c["dev_mean_recall_at_1"],
    )
    intent_weight = float(best_kb["intent_weight"])
    faq = build_faq(kbs, kb_side)

    # 4. answer gate + threshold on dev (language given, combined KB)
    def model_for(gate: Gate, threshold: float, index_: FaqIndex = faq) -> QuestionModel:
        return QuestionModel(
            head,
            index_,
            answer_threshold=threshold,
            answer_gate=gate,
            intent_weight=intent_weight,
        )

    answer_dev = tune_answer(
        model_for, x[dev], list(lang[dev]), list(gold[dev]), config.answer_target
    )
    gate: Gate = answer_dev["gate"]
    answer_t = float(answer_dev["threshold"])
    model = model_for(gate, answer_t)

    # precision / coverage against the answer threshold (same gate), per language, with the
    # combined KB searched in the question's language: for choosing a stricter target later
    curve: dict[str, dict[str, Any]] = {"dev": {}, "test": {}}
    for part, m_part in (("dev", dev), ("test", test)):
        for t in ANSWER_CURVE:
            intents_c, chosen_c = run_model(model_for(gate, t), x[m_part], list(lang[m_part]))
            ch = np.array(chosen_c, dtype=object)
            lg_part, g_part = lang[m_part], gold[m_part]
            curve[part][f"{t:.2f}"] = {
                lg: {
                    k: v
                    for k, v in answer_metrics(
                        intents_c, list(ch[lg_part == lg]), list(g_part[lg_part == lg])
                    ).items()
                    if k in ("precision_when_answering", "coverage_in_scope", "other_answered_rate")
                }
                for lg in ("en", "zh")
            }

    # 5. test metrics through the runtime
    test_sets = {"en": test & (lang == "en"), "zh": test & (lang == "zh")}
    intent_test = {}
    for lg, m in test_sets.items():
        pred = [r.intent.label for r in model.predict(x[m], list(lang[m]))]
        intent_test[lg] = intent_metrics(pred, list(gold[m]))
        pred_en_only = decide(_softmax(x[m] @ w_en + b_en), labels, 0.0)
        intent_test[lg]["accuracy_head_trained_on_english_only"] = round(
            float((np.array(pred_en_only) == gold[m]).mean()), 4
        )
    all_test = test
    intent_test["all"] = intent_metrics(
        [r.intent.label for r in model.predict(x[all_test], list(lang[all_test]))],
        list(gold[all_test]),
    )
    entry_lang = np.array([e.language for e in faq.entries])
    faq_en = faq_subset(faq, entry_lang == "en")
    faq_zh = faq_subset(faq, entry_lang == "zh")
    settings = {
        "en_questions_en_kb": (test_sets["en"], faq_en, None),
        "zh_questions_zh_kb": (test_sets["zh"], faq_zh, None),
        "zh_questions_en_kb": (test_sets["zh"], faq_en, None),
        "en_questions_zh_kb": (test_sets["en"], faq_zh, None),
        "all_questions_combined_kb_language_given": (all_test, faq, "given"),
        "all_questions_combined_kb_no_language": (all_test, faq, None),
    }
    retrieval_test = {}
    for name, (m, index_, langs_mode) in settings.items():
        langs = list(lang[m]) if langs_mode == "given" else None
        setting_model = model_for(gate, answer_t, index_)
        scores = setting_model.entry_scores(x[m], langs)
        ranking = ranking_metrics(scores, [e.intent for e in index_.entries], list(gold[m]))
        intents, chosen_ = run_model(setting_model, x[m], langs)
        retrieval_test[name] = {**ranking, **answer_metrics(intents, chosen_, list(gold[m]))}
    # every KB side with pure embedding retrieval, on test: reported, never chosen from
    embedding_only = {}
    for side in KB_SIDES:
        index_all = build_faq(kbs, side)
        side_lang = np.array([e.language for e in index_all.entries])
        per_setting = {}
        for name, (m, keep) in {
            "en_questions_en_kb": (test_sets["en"], side_lang == "en"),
            "zh_questions_zh_kb": (test_sets["zh"], side_lang == "zh"),
            "zh_questions_en_kb": (test_sets["zh"], side_lang == "en"),
        }.items():
            index_ = faq_subset(index_all, keep)
            trial = QuestionModel(head, index_, answer_threshold=1.0, intent_weight=0.0)
            per_setting[name] = ranking_metrics(
                trial.entry_scores(x[m]), [e.intent for e in index_.entries], list(gold[m])
            )
        embedding_only[side] = per_setting
    report.update(
        {
            "test_embedding_only_retrieval": embedding_only,
            "kb": {
                "kb_side": kb_side,
                "intent_weight": intent_weight,
                "candidates_dev": candidates,
            },
            "answer": {"gate": gate, "threshold": answer_t, "dev": answer_dev, "curve": curve},
            "test": {"intent": intent_test, "retrieval": retrieval_test},
        }
    )
    return Trained(
        corpus,
        labels,
        weights,
        bias,
        other_t,
        kb_side,
        intent_weight,
        faq,
        gate,
        answer_t,
        report,
    )


def _softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    out: FloatArray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


def speed(corpora: Sequence[Corpus], config: QuestionsConfig) -> dict[str, Any]:
    """Questions/s at ``bench_batch``: test questions in a seeded random order.

    The encoders are benchmarked in alternating rounds (A B A B ...), so that load from
    other processes on the shared cores hits both alike; the median round is reported.
    """
    texts = [q.text for q in corpora[0].questions if q.split == "test"]
    order = np.random.default_rng(config.seed).permutation(len(texts))
    texts = [texts[i] for i in order]
    scorers = {
        c.encoder: open_encoder(c.encoder_dir, threads=config.threads, sub_batch=config.bench_batch)
        for c in corpora
    }
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in scorers}
    for _ in range(config.bench_rounds):
        for name, scorer in scorers.items():
            load = round(os.getloadavg()[0], 2)
            rounds[name].append(
                {"load_1min": load}
                | bench(
                    scorer,
                    texts,
                    "query: ",
                    batch=config.bench_batch,
                    repeats=config.bench_repeats,
                    threads=config.threads,
                )
            )
    out = {}
    for name, results in rounds.items():
        ranked = sorted(results, key=lambda r: r["questions_per_s"])
        out[name] = {
            **ranked[len(ranked) // 2],
            "rounds_questions_per_s": [r["questions_per_s"] for r in results],
            "rounds_load_1min": [r["load_1min"] for r in results],
        }
    return out


def run(
    encoder_dir: Path,
    compare: Sequence[Path],
    data_dir: Path,
    out: Path | None,
    *,
    version: str,
    config: QuestionsConfig,
    project_dir: Path = PROJECT_DATA,
) -> dict[str, Any]:
    """Evaluate ``encoder_dir`` and every ``compare`` encoder; package ``encoder_dir``."""
    labels = [*bitext_intents(data_dir), OTHER]
    results: dict[str, Trained] = {}
    comparison: dict[str, Any] = {}
    for enc in [encoder_dir, *compare]:
        t0 = time.perf_counter()
        corpus = load_corpus(
            enc,
            data_dir,
            project_dir,
            threads=config.threads,
            en_kb_questions=config.en_kb_questions,
        )
        embed_s = time.perf_counter() - t0
        trained = train_and_evaluate(corpus, labels, config)
        trained.report["embedding"] = {
            "texts_encoded_this_run": corpus.encoded,
            "seconds": round(embed_s, 1),
            "note": "0 encoded means every embedding came from build/questions-cache",
        }
        results[str(enc)] = trained
        comparison[corpus.encoder] = trained.report
    speeds = speed([t.corpus for t in results.values()], config)
    for t in results.values():
        t.report["speed"] = speeds[t.corpus.encoder]
    chosen = results[str(encoder_dir)]
    summary = {name: _summary(r) for name, r in comparison.items()}
    if out is not None:
        write_package(chosen, out, version=version, config=config, comparison=comparison)
    return {"packaged": chosen.corpus.encoder, "summary": summary}


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    t = report["test"]
    r = t["retrieval"]
    return {
        "intent_acc_en": t["intent"]["en"]["accuracy"],
        "intent_acc_zh": t["intent"]["zh"]["accuracy"],
        "intent_acc_zh_en_only_head": t["intent"]["zh"]["accuracy_head_trained_on_english_only"],
        "other_precision": t["intent"]["all"]["other_precision"],
        "other_recall": t["intent"]["all"]["other_recall"],
        "r1_en_en": r["en_questions_en_kb"]["recall_at_1"],
        "r1_zh_zh": r["zh_questions_zh_kb"]["recall_at_1"],
        "r1_zh_en": r["zh_questions_en_kb"]["recall_at_1"],
        "questions_per_s": report["speed"]["questions_per_s"],
    }


def write_package(
    trained: Trained,
    out: Path,
    *,
    version: str,
    config: QuestionsConfig,
    comparison: dict[str, Any],
) -> None:
    """Write head, KB, vectors, metrics, model card and manifest into ``out``."""
    from export.questions.card import model_card

    corpus = trained.corpus
    enc_manifest = json.loads((corpus.encoder_dir / MANIFEST).read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / HEAD_FILE, weights=trained.weights, bias=trained.bias)
    np.savez(
        out / KB_VECTORS_FILE,
        vectors=trained.faq.vectors.astype(np.float32),
        owner=trained.faq.owner.astype(np.int64),
    )
    entries = [*corpus.kb_en.entries, *corpus.kb_zh.entries]
    if [e.id for e in entries] != [e.id for e in trained.faq.entries]:
        raise ExportError("KB entry order differs from the index")
    (out / KB_FILE).write_text(
        json.dumps(
            {"format": 1, "entries": [e.to_yaml() for e in entries]}, ensure_ascii=False, indent=1
        )
        + "\n",
        encoding="utf-8",
    )
    dump_kb(
        list(corpus.kb_en.entries),
        out / "kb_en.yaml",
        source="built from the Bitext file by export/questions/kb.py (CDLA-Sharing-1.0, "
        "(c) Bitext Innovations, 2023; modified: placeholders filled generically)",
    )
    metrics = {"packaged_encoder": corpus.encoder, "comparison": comparison}
    (out / "metrics.json").write_text(
        json.dumps(metrics, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
    )
    manifest: dict[str, Any] = {
        "format": 1,
        "name": "questions-zh-en",
        "version": version,
        "task": TASK,
        "labels": trained.labels,
        "other_label": OTHER,
        "thresholds": {"other": trained.other_threshold, "answer": trained.answer_threshold},
        "answer_gate": trained.gate,
        "intent_weight": trained.intent_weight,
        "kb_side": trained.kb_side,
        "embedding_dim": int(trained.weights.shape[0]),
        "encoder": {
            "name": str(enc_manifest["name"]),
            "model_sha256": str(enc_manifest["sha256"]["model.onnx"]),
            "query_prefix": "query: ",
        },
        "training": {"config": asdict(config), "data": _data_counts(corpus)},
    }
    (out / "MODEL_CARD.md").write_text(model_card(manifest, metrics), encoding="utf-8")
    files = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != MANIFEST)
    manifest["sha256"] = {name: sha256_file(out / name) for name in files}
    manifest[MANIFEST_DIGEST] = manifest_digest(manifest)
    (out / MANIFEST).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
    )


def _data_counts(corpus: Corpus) -> dict[str, int]:
    counts: dict[str, int] = {}
    for q in corpus.questions:
        key = f"{q.source}_{q.lang}_{q.split}"
        counts[key] = counts.get(key, 0) + 1
    counts["kb_en_entries"] = len(corpus.kb_en.entries)
    counts["kb_zh_entries"] = len(corpus.kb_zh.entries)
    return dict(sorted(counts.items()))
