"""The event contract: input (``contract``), output (``enriched``, ``deadletter``), labels
(``sentiment``), and the JSON Schemas of every topic (``schemas/``)."""
