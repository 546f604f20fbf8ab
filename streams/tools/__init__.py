"""Developer tooling: local Kafka, the demo, replay, offline scoring and benchmarks.

Tooling imports the service; the service never imports tooling.
"""
