"""One progress bar style for every long step (rich, on stderr)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def progress_bar(label: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n)`; draws a bar with rate and time left when enabled and total > 0."""
    if not enabled or total == 0:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def map_with_progress(label: str, function: Callable, items: list) -> list:
    """`[function(item) for item in items]`, with a progress bar."""
    results = []
    with progress_bar(label, len(items)) as advance:
        for item in items:
            results.append(function(item))
            advance(1)
    return results
