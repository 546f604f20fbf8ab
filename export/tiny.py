"""A tiny but complete Hugging Face checkpoint for tests and CI smoke runs.

The Hugging Face hub is unreachable from CI, so tests cannot download a real
model. :func:`build_tiny_checkpoint` makes one locally in about a second: a
2-layer, 32-wide encoder of a supported family with a sentiment head, and a
real WordPiece tokenizer whose vocabulary comes from short zh+en review
sentences, saved in the same layout as a downloaded checkpoint
(``config.json``, ``model.safetensors``, ``tokenizer.json``,
``tokenizer_config.json``), so the export pipeline runs on it unchanged. The
same seed gives the same checkpoint. :func:`build_tiny_package` exports that
checkpoint as a model package: the one committed under
``tests/fixtures/tiny-package`` (``make tiny-fixture``), which the unit tests
load without torch.

The randomly initialised encoder is then fitted for 30 small steps (under a
second) to the sentiment of the template sentences. A purely random head
gives nearly equal logits for every text, so int8-vs-fp32 label agreement
would hinge on noise; after the short fit, predictions have real margins and
differ between texts, which makes the parity label checks meaningful.
"""

from __future__ import annotations

import itertools
import json
import logging
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
)
from transformers import AutoConfig, AutoModelForSequenceClassification

from export.errors import UnsupportedModelError
from export.onnx_export import export_package

logger = logging.getLogger(__name__)

SENTIMENT_LABELS = ("negative", "neutral", "positive")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_POSITIONS = 128
VOCAB_SIZE = 1000
FIT_STEPS = 30
FIT_BATCH_SIZE = 64
FIT_LEARNING_RATE = 1e-2
# The tiny package: what the unit tests' scorer expects of it.
TINY_PACKAGE_NAME = "tiny"
TINY_PACKAGE_VERSION = "0.0.1"
TINY_TEXT_PREFIX = "passage: "

# (phrase, sentiment index into SENTIMENT_LABELS)
_EN_OPINIONS = (
    ("great", 2),
    ("amazing", 2),
    ("friendly", 2),
    ("okay", 1),
    ("average", 1),
    ("terrible", 0),
    ("too expensive", 0),
    ("broken", 0),
)
_ZH_OPINIONS = (
    ("很好", 2),
    ("非常棒", 2),
    ("很热情", 2),
    ("一般", 1),
    ("还行", 1),
    ("太差了", 0),
    ("太贵了", 0),
    ("坏了", 0),
)
_EN_ITEMS = (
    "food",
    "room",
    "service",
    "staff",
    "price",
    "delivery",
    "app",
    "screen",
    "battery",
    "hotel",
)
_ZH_ITEMS = ("菜", "房间", "服务", "价格", "快递", "屏幕", "电池", "酒店", "客服", "包装")

# Per-family constructor arguments beyond the shared ones (the FFN width has a
# different name in DistilBERT's config).
_FAMILY_KWARGS: dict[str, dict[str, Any]] = {
    "bert": {"intermediate_size": 64},
    "xlm-roberta": {"intermediate_size": 64},
    "distilbert": {"hidden_dim": 64},
}


def labelled_sample_texts() -> list[tuple[str, int]]:
    """Short zh+en review sentences (320) with their sentiment index."""
    english = [
        (template.format(item=item, opinion=opinion), sentiment)
        for item, (opinion, sentiment) in itertools.product(_EN_ITEMS, _EN_OPINIONS)
        for template in ("The {item} was {opinion}.", "Honestly the {item} is {opinion}!")
    ]
    chinese = [
        (template.format(item=item, opinion=opinion), sentiment)
        for item, (opinion, sentiment) in itertools.product(_ZH_ITEMS, _ZH_OPINIONS)
        for template in ("这家的{item}{opinion}。", "说实话{item}{opinion}！")
    ]
    return english + chinese


def sample_texts() -> list[str]:
    """The sentences of :func:`labelled_sample_texts`, without labels."""
    return [text for text, _ in labelled_sample_texts()]


def build_tiny_checkpoint(
    out_dir: Path,
    *,
    num_labels: int = 3,
    seed: int = 0,
    model_type: str = "bert",
    texts: Sequence[str] | None = None,
) -> Path:
    """Write a tiny sequence-classification checkpoint to ``out_dir``; return ``out_dir``.

    ``model_type`` is one of bert, xlm-roberta, distilbert; the tokenizer is
    built from ``texts`` (default :func:`sample_texts`). Labels are
    negative/neutral/positive when ``num_labels`` is 3, ``label_<i>`` otherwise
    (then the fit target is the sentiment index modulo ``num_labels``).
    """
    if model_type not in _FAMILY_KWARGS:
        raise UnsupportedModelError(f"no tiny checkpoint recipe for model_type {model_type!r}")
    if num_labels < 2:
        raise ValueError(f"num_labels must be at least 2, got {num_labels}")
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer(list(texts) if texts is not None else sample_texts())
    tokenizer.save(str(out_dir / "tokenizer.json"))
    _write_tokenizer_config(out_dir)
    config = _config(model_type, tokenizer, _labels(num_labels))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(config)
        _fit(model, tokenizer, num_labels)
    model.save_pretrained(out_dir)
    logger.info("built tiny %s checkpoint in %s", model_type, out_dir)
    return out_dir


def build_tiny_package(out_dir: Path, *, seed: int = 0) -> Path:
    """Build the tiny checkpoint (``seed``) and export it as an fp32 package in ``out_dir``.

    The same seed gives the same model, up to floating-point differences between
    torch builds: tokenizer, labels and settings equal, outputs within a small
    tolerance. The checkpoint is temporary; ``training`` in the manifest says how
    it was made. ``out_dir`` must not exist or be empty. Returns ``out_dir``.
    """
    with tempfile.TemporaryDirectory(prefix="tiny-checkpoint.") as tmp:
        checkpoint = build_tiny_checkpoint(Path(tmp) / "checkpoint", seed=seed)
        return export_package(
            checkpoint,
            out_dir,
            task="sequence-classification",
            name=TINY_PACKAGE_NAME,
            version=TINY_PACKAGE_VERSION,
            text_prefix=TINY_TEXT_PREFIX,
            max_length=MAX_POSITIONS,
            training={
                "recipe": "export.tiny.build_tiny_checkpoint",
                "seed": seed,
                "steps": FIT_STEPS,
                "data": "export.tiny.labelled_sample_texts",
            },
            validation_texts=sample_texts(),
        )


def _labels(num_labels: int) -> tuple[str, ...]:
    if num_labels == len(SENTIMENT_LABELS):
        return SENTIMENT_LABELS
    return tuple(f"label_{i}" for i in range(num_labels))


def _build_tokenizer(texts: list[str]) -> Tokenizer:
    """A BERT-style WordPiece tokenizer (CJK characters split, lower-cased) for ``texts``.

    The vocabulary is built by rule, not by ``tokenizers``' WordPiece trainer,
    whose ties fall differently from one process to the next: the special
    tokens, the words of ``texts`` by falling frequency (ties alphabetical),
    then every proper prefix of a word and every proper suffix as a ``##``
    piece (sorted), up to ``VOCAB_SIZE`` pieces. Seen words are one token, an
    unseen word splits into the longest pieces that match, and the same texts
    always give the same ids.
    """
    normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter(
        word
        for text in texts
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
    )
    words = sorted(counts, key=lambda w: (-counts[w], w))
    prefixes = sorted({w[:i] for w in words for i in range(1, len(w))})
    suffixes = sorted({f"##{w[i:]}" for w in words for i in range(1, len(w))})
    pieces = list(dict.fromkeys([*SPECIAL_TOKENS, *words, *prefixes, *suffixes]))
    vocab = {piece: i for i, piece in enumerate(pieces[:VOCAB_SIZE])}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    cls_id, sep_id = _token_id(tokenizer, "[CLS]"), _token_id(tokenizer, "[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer.decoder = decoders.WordPiece()
    return tokenizer


def _fit(model: Any, tokenizer: Tokenizer, num_labels: int) -> None:
    """A few Adam steps on random mini-batches of the labelled sample sentences.

    Runs on one thread: for a model this small, thread hand-offs cost more
    than they save, and several times more on a busy 2-core CI machine.
    """
    samples = labelled_sample_texts()
    encoder = Tokenizer.from_str(tokenizer.to_str())
    encoder.enable_padding(pad_id=_token_id(tokenizer, "[PAD]"), pad_token="[PAD]")
    encodings = encoder.encode_batch([text for text, _ in samples])
    input_ids = torch.tensor([e.ids for e in encodings])
    attention_mask = torch.tensor([e.attention_mask for e in encodings])
    targets = torch.tensor([sentiment % num_labels for _, sentiment in samples])
    optimizer = torch.optim.Adam(model.parameters(), lr=FIT_LEARNING_RATE)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.train()
        for _ in range(FIT_STEPS):
            batch = torch.randint(len(samples), (FIT_BATCH_SIZE,))
            optimizer.zero_grad()
            outputs = model(
                input_ids=input_ids[batch],
                attention_mask=attention_mask[batch],
                labels=targets[batch],
            )
            outputs.loss.backward()
            optimizer.step()
        model.eval()
    finally:
        torch.set_num_threads(threads)


def _write_tokenizer_config(out_dir: Path) -> None:
    """tokenizer_config.json so that ``AutoTokenizer.from_pretrained`` loads the fast tokenizer.

    The class is BERT's for every family: the tokenizer is WordPiece whatever
    the encoder architecture.
    """
    config = {
        "tokenizer_class": "BertTokenizerFast",
        "do_lower_case": True,
        "model_max_length": MAX_POSITIONS,
        "unk_token": "[UNK]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    }
    text = json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (out_dir / "tokenizer_config.json").write_text(text, encoding="utf-8")


def _token_id(tokenizer: Tokenizer, token: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise ValueError(f"the tokenizer lacks the special token {token}")
    return token_id


def _config(model_type: str, tokenizer: Tokenizer, labels: tuple[str, ...]) -> Any:
    pad_id = _token_id(tokenizer, "[PAD]")
    # RoBERTa-style position ids start after pad_token_id: reserve those slots.
    extra_positions = pad_id + 1 if model_type == "xlm-roberta" else 0
    return AutoConfig.for_model(
        model_type,
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=MAX_POSITIONS + extra_positions,
        pad_token_id=pad_id,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        **_FAMILY_KWARGS[model_type],
    )
