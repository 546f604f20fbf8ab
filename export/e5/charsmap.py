"""A SentencePiece ``precompiled_charsmap`` built from a per-code-point map.

The engine normalises text through a table of code point -> replacement.
``tokenizers``' ``Precompiled`` normaliser takes such a map as a darts-clone double-array
trie over the UTF-8 bytes of each source character, followed by the replacements; this
module builds that trie.
"""

from __future__ import annotations

import struct

import numpy as np

from export.errors import E5BaseError


def _darts_unit(label: int, has_leaf: bool, offset: int) -> int:
    if offset >= 1 << 21:
        raise E5BaseError("double-array offset overflow")
    return label | (int(has_leaf) << 8) | (offset << 10)


def _double_array(keys: dict[bytes, int]) -> list[int]:
    """Build a darts-clone double array (the ``precompiled_charsmap`` trie format)."""
    children: list[dict[int, int]] = [{}]
    values: list[int | None] = [None]
    for key in sorted(keys):
        node = 0
        for byte in key:
            nxt = children[node].get(byte)
            if nxt is None:
                nxt = len(children)
                children.append({})
                values.append(None)
                children[node][byte] = nxt
            node = nxt
        values[node] = keys[key]

    units = np.zeros(1024, dtype=np.uint32)
    used = np.zeros(1024, dtype=bool)
    used[0] = True  # root
    base_used = np.zeros(1024, dtype=bool)
    position = {0: 0}
    labels_of = {0: 0}
    queue = [0]
    for node in queue:  # breadth first; the list grows while iterating
        labels = sorted(children[node])
        has_leaf = values[node] is not None
        slots = ([0] if has_leaf else []) + labels
        while True:
            # bases b whose slots b ^ s are all free (XOR stays inside a 256 block)
            cands = np.arange(1, len(used))
            ok = ~base_used[cands]
            for slot in slots:
                ok &= ~used[cands ^ slot]
            hits = np.flatnonzero(ok)
            if hits.size:
                base = int(cands[hits[0]])
                break
            units = np.concatenate([units, np.zeros(len(units), dtype=np.uint32)])
            used = np.concatenate([used, np.zeros(len(used), dtype=bool)])
            base_used = np.concatenate([base_used, np.zeros(len(base_used), dtype=bool)])
        base_used[base] = True
        pos = position[node]
        units[pos] = _darts_unit(labels_of[node], has_leaf, pos ^ base)
        if has_leaf:
            value = values[node]
            if value is None or value >= 1 << 31:
                raise E5BaseError("double-array value overflow")
            units[base] = value | (1 << 31)
            used[base] = True
        for label in labels:
            child = children[node][label]
            child_pos = base ^ label
            used[child_pos] = True
            position[child] = child_pos
            labels_of[child] = label
            queue.append(child)
    # a lookup may probe any label of a base's 256-block: keep every such block whole
    last = max(int(np.flatnonzero(used).max()), int(np.flatnonzero(base_used).max()))
    size = (last // 256 + 1) * 256
    return [int(u) for u in units[:size]]


def build_precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """Encode a per-code-point map as a SentencePiece ``precompiled_charsmap``.

    Layout: ``u32 trie_bytes``, the darts-clone double array (u32 units) mapping each
    source character's UTF-8 bytes to an offset, then the NUL-terminated replacements.
    Surrogate code points cannot occur in valid UTF-8 text and are skipped.
    """
    blob = bytearray()
    offsets: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for cp in sorted(norm_map):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        out = norm_map[cp]
        if out not in offsets:
            offsets[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        keys[chr(cp).encode("utf-8")] = offsets[out]
    units = _double_array(keys)
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)
