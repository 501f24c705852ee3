"""Subflows run in their caller's process, whose own flow run already sends its heartbeat."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings


@contextmanager
def sharing_the_callers_heartbeat() -> Iterator[None]:
    """Flow runs started inside send no heartbeat of their own: the caller's says the process
    is alive. Each heartbeat thread costs its flow run up to 1 s at exit (Prefect joins a thread
    that sleeps in 1 s steps), most of the main job's fixed overhead."""
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
