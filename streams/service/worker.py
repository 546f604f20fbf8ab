"""Run the worker: build everything from settings, then hand the app to Faust."""

from __future__ import annotations

import logging

import faust

from streams.service.app import build_worker
from streams.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings, loglevel: str = "INFO") -> None:
    """Block until the worker is stopped (SIGINT/SIGTERM)."""
    worker = build_worker(settings)
    log.info(
        "worker %s: %s → %s, store %s, web :%d",
        settings.app_id,
        settings.kafka.topics.reviews,
        settings.kafka.topics.reviews_enriched,
        settings.store.backend,
        settings.web.port,
    )
    try:
        faust.Worker(worker.app, loglevel=loglevel).execute_from_commandline()
    finally:
        worker.close()
