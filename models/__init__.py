"""Inference only: load an ONNX model package and score text batches.

No Kafka, no ClickHouse, no torch. See :mod:`models.package` for the package
format, :mod:`models.runtime` for onnxruntime sessions and :mod:`models.scorer`
for the pure tokenise → run → post-process core.
"""
