"""Root of the project's error tree and the model-side branch.

The whole tree is drawn in :mod:`streams.errors`; it lives here at the root
because ``models`` is the lowest layer (``streams`` and ``export`` import it,
never the other way round).
"""


class ReviewPulseError(Exception):
    """Base class of every error ReviewPulse raises on purpose; never raised itself."""


class ModelError(ReviewPulseError):
    """A model package cannot be used; never raised itself, one of its subclasses is."""


class ModelPackageError(ModelError):
    """The package directory or its manifest is missing, malformed or unsupported.

    Raised by :func:`models.package.load_package`, by
    :func:`models.runtime.create_session` when onnxruntime cannot load the
    model, by :meth:`models.scorer.Scores.top` for a package without a
    classification head, and by :func:`models.knowledge.parse_kb` and
    :func:`models.knowledge.embed_kb` for a knowledge-base file that cannot be used.
    """


class ModelLabelsError(ModelPackageError):
    """The package's labels are not the ones the service's event contract declares."""


class ModelIntegrityError(ModelError):
    """A package file's sha256 does not match the manifest: refuse to serve it.

    Raised by :func:`models.package.load_package` (so by ``open_scorer``).
    """


class ProviderError(ModelError):
    """An explicitly required execution provider is not available.

    Raised by :func:`models.runtime.choose_providers` with ``strict=True``.
    """
