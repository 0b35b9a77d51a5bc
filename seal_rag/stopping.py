"""SIGTERM as a stop like Ctrl-C, for commands that can say what was kept and how to go on."""

from __future__ import annotations

import contextlib
import signal
import threading


class Terminated(BaseException):
    """SIGTERM arrived (a service manager stopping a run, `timeout`, `kill`). A BaseException, as
    KeyboardInterrupt is: the handlers that turn a store's or a PDF's failure into a one-line
    error catch Exception, and must not call a stop a damaged index or an unreadable file."""


@contextlib.contextmanager
def terminate_as_interrupt():
    """Within the block, SIGTERM raises `Terminated`, where it would otherwise end the process
    without a word. Only the main thread may set handlers: elsewhere the block runs as is."""
    def stop(signum, frame):
        raise Terminated

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
