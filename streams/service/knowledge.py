"""The FAQ knowledge base from a file (``questions.knowledge_base``), reloaded when it changes.

:class:`KnowledgeBase` loads the file when it is built (a file it cannot use raises, so the
worker does not start) and :meth:`KnowledgeBase.check` looks at it again: when its content
(sha256, not its mtime) changed, it parses and embeds it into a new question package. A file
it cannot use (missing, bad YAML, no entries, a duplicate id, a bad language, an intent the
head does not know, an encoder failure) is logged with the reason and the old knowledge base
stays live; the same broken content is not tried again until the file changes. The worker
runs ``check`` on its scoring thread, so a reload never overlaps a batch being scored, and
installs the new package with :meth:`~streams.service.pipeline.BatchProcessor.use_questions`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from models.errors import ModelError, ModelPackageError
from models.knowledge import Encoder, embed_kb, parse_kb
from models.questions import QuestionPackage
from streams.service.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KbVersion:
    """The knowledge base that is live: its file, content hash and entry count."""

    path: Path
    sha256: str
    entries: int


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelPackageError(f"{path}: cannot read the knowledge base: {exc}") from exc


class KnowledgeBase:
    """A question package answering from the KB file at ``path``, reloaded on change."""

    def __init__(
        self,
        path: Path,
        package: QuestionPackage,
        encoder: Encoder,
        metrics: Metrics | None = None,
    ) -> None:
        self.path = path
        self._base = package
        self._encoder = encoder
        self._metrics = metrics if metrics is not None else Metrics()
        self._refused: str | None = None  # the broken content (or read error) last logged
        data = _read(path)
        self.package, self.live = self._load(data, hashlib.sha256(data).hexdigest())
        self._went_live("knowledge base")

    def describe(self) -> str:
        """Which knowledge base is live, for logs."""
        live = self.live
        return f"{live.path} sha256 {live.sha256[:12]} with {live.entries} entries"

    def check(self) -> QuestionPackage | None:
        """The new package when the file changed and can be used; otherwise None (logged)."""
        try:
            data = _read(self.path)
        except ModelPackageError as exc:
            self._refuse(str(exc), str(exc))
            return None
        digest = hashlib.sha256(data).hexdigest()
        if digest == self.live.sha256:
            self._refused = None  # back to the live content: a broken one is news again
            return None
        if digest == self._refused:
            return None
        try:
            package, live = self._load(data, digest)
        except ModelError as exc:
            self._refuse(digest, f"sha256 {digest[:12]}: {exc}")
            return None
        except Exception as exc:  # an encoder failure: keep serving, say why
            log.exception("knowledge base %s could not be embedded", self.path)
            self._refuse(digest, f"sha256 {digest[:12]}: {type(exc).__name__}: {exc}")
            return None
        self._refused = None
        self.package, self.live = package, live
        self._went_live("knowledge base reloaded:")
        return package

    def _load(self, data: bytes, digest: str) -> tuple[QuestionPackage, KbVersion]:
        entries = parse_kb(data, self.path)
        try:
            package = embed_kb(self._base, entries, self._encoder)
        except ModelPackageError as exc:
            raise ModelPackageError(f"{self.path}: {exc}") from exc
        return package, KbVersion(self.path, digest, len(entries))

    def _went_live(self, what: str) -> None:
        live = self.live
        log.info("%s %s", what, self.describe())
        self._metrics.knowledge_base_live(str(live.path), live.sha256, live.entries)

    def _refuse(self, key: str, reason: str) -> None:
        if key == self._refused:
            return
        self._refused = key
        self._metrics.knowledge_base_refused.inc()
        log.error(
            "knowledge base %s refused, still answering from %s: %s",
            self.path,
            self.describe(),
            reason,
        )
