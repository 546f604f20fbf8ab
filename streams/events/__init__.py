"""The event contract: what comes in (``contract``), what goes out, and their JSON Schemas."""
