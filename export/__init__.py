"""Offline model work: base encoder, fine-tuning, ONNX export, quantisation, parity.

Needs the ``export`` extra (torch, transformers). The service (``streams``) and the
runtime (``models``) never import this package.
"""
