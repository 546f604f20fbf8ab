"""What an export produces, on one screen.

Everything the exporter, the quantiser and the parity check must agree on
(graph input/output names, dynamic axes, opset, tolerances, per-family quirks)
is declared here, so that a reader can see the model-package contract without
reading the export code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from export.errors import UnsupportedModelError

TASK_CLASSIFICATION = "sequence-classification"
TASK_EMBEDDING = "embedding"
TASKS = (TASK_CLASSIFICATION, TASK_EMBEDDING)

PACKAGE_FORMAT = 1

INPUT_NAMES = ("input_ids", "attention_mask")
LOGITS = "logits"
EMBEDDING = "embedding"

# The classic TorchScript exporter (``dynamo=False``) traces HF BERT-likes
# reliably and its node names (``/encoder/layer.N/output/dense/MatMul``) are
# what onnxruntime's transformer optimiser and the FFN exclusion rely on.
# Opset 17 is the first with a native LayerNormalization op.
DEFAULT_OPSET = 17
DEFAULT_ATOL = 1e-4
INT8_LABEL_AGREEMENT_MIN = 0.99
INT8_EMBEDDING_COSINE_MEAN_MIN = 0.98

QUANTIZATION_METHOD = "dynamic-int8"


@dataclass(frozen=True)
class FamilySpec:
    """What one supported ``config.model_type`` needs from the exporter.

    ``uses_token_type_ids``: the encoder accepts ``token_type_ids`` (the
    wrapper feeds zeros; they are never a graph input).
    ``positions_after_pad_id``: position ids start after ``pad_token_id``
    (RoBERTa/XLM-R), which costs ``pad_token_id + 1`` position slots.
    ``ffn_output_matmul``: regex for the FFN output projection MatMul node
    names, the layers most sensitive to int8 quantisation.
    ``ort_model_type``: model type for ``onnxruntime.transformers.optimizer``.
    """

    uses_token_type_ids: bool
    positions_after_pad_id: bool
    ffn_output_matmul: str
    ort_model_type: str = "bert"


_BERT_FFN_OUTPUT = r"/encoder/layer\.\d+/output/dense/MatMul$"

FAMILIES: Mapping[str, FamilySpec] = MappingProxyType(
    {
        # MiniLM checkpoints (e.g. multilingual-MiniLM-L12) are model_type "bert".
        "bert": FamilySpec(
            uses_token_type_ids=True,
            positions_after_pad_id=False,
            ffn_output_matmul=_BERT_FFN_OUTPUT,
        ),
        "xlm-roberta": FamilySpec(
            uses_token_type_ids=True,
            positions_after_pad_id=True,
            ffn_output_matmul=_BERT_FFN_OUTPUT,
        ),
        "distilbert": FamilySpec(
            uses_token_type_ids=False,
            positions_after_pad_id=False,
            ffn_output_matmul=r"/transformer/layer\.\d+/ffn/lin2/MatMul$",
        ),
    }
)


def family_for(model_type: str) -> FamilySpec:
    """Return the family spec for ``model_type`` or raise UnsupportedModelError."""
    try:
        return FAMILIES[model_type]
    except KeyError:
        supported = ", ".join(sorted(FAMILIES))
        raise UnsupportedModelError(
            f"model_type {model_type!r} is not supported for export (supported: {supported})"
        ) from None


@dataclass(frozen=True)
class ExportSpec:
    """The ONNX graph contract of one export: task, opset, names, axes, tolerances."""

    task: str
    family: FamilySpec
    opset: int = DEFAULT_OPSET
    atol: float = DEFAULT_ATOL
    int8_label_agreement_min: float = INT8_LABEL_AGREEMENT_MIN
    int8_embedding_cosine_mean_min: float = INT8_EMBEDDING_COSINE_MEAN_MIN
    input_names: tuple[str, ...] = INPUT_NAMES

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UnsupportedModelError(f"task {self.task!r} is not one of {TASKS}")

    @property
    def output_names(self) -> tuple[str, ...]:
        """Graph outputs: logits then embedding for classification, embedding alone otherwise."""
        if self.task == TASK_CLASSIFICATION:
            return (LOGITS, EMBEDDING)
        return (EMBEDDING,)

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Batch and sequence are dynamic on inputs; batch is dynamic on outputs."""
        axes = {name: {0: "batch", 1: "seq"} for name in self.input_names}
        axes.update({name: {0: "batch"} for name in self.output_names})
        return axes

    def tolerance(self) -> dict[str, float]:
        """The ``tolerance`` block of the manifest; parity reads its thresholds from it."""
        return {
            "atol": self.atol,
            "int8_label_agreement_min": self.int8_label_agreement_min,
            "int8_embedding_cosine_mean_min": self.int8_embedding_cosine_mean_min,
        }
