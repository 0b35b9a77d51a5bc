"""Per-stage wall-clock seconds, as `ask --timings`, the service and the latency bench report them."""

from __future__ import annotations

import time
from contextlib import contextmanager


@contextmanager
def timed(timings: dict[str, float] | None, stage: str):
    """Add the seconds the block takes to `timings[stage]` (a stage run twice adds up); None: not timed."""
    start = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
