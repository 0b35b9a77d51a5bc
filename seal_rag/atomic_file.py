"""Write a file whole or not at all.

A reader, a second process writing the same file, or a run stopped mid-write sees the old file or
the new one, never half of one: the content goes to a scratch file beside the target (named for
this process, so two writers never share one), which then replaces the target in one rename.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield the scratch path to write; when the block ends without error it replaces `path`.

    The scratch name keeps `path`'s suffix last (`np.savez` and `np.save` would append theirs
    otherwise) and holds ".tmp", which globs for finished files leave out. On an error it is removed.
    """
    path = Path(path)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
