"""Customer questions: intent head and FAQ retrieval over frozen e5 embeddings.

``reviewpulse export questions`` (see :mod:`export.questions.build`) trains the head,
builds the knowledge bases, evaluates both candidate encoders and writes the package
that :mod:`models.questions` serves.
"""
