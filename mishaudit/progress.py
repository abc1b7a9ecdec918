"""A transient progress line on stderr for the long phases of a command (report, tune): shown on a
terminal only, quiet when stderr is a pipe or a file, and gone once the phase ends (nothing is left
in the output). Library code calls `phase(...)`; with no terminal it costs nothing.

    with phase("report fp16", total=12) as step:
        for f in formulas:
            step(f"overflow map {f.id}")   # one step done, and what comes next
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

_active = None  # (Progress, task id) while a phase shows


def enabled() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError, OSError):
        return False


@contextmanager
def phase(what: str, total: int | None = None):
    """Show `what` with a bar of `total` steps (a spinner when None); yields step(text=None, advance=1).
    Nested phases reuse the outer line (its text changes; the bar restarts)."""
    global _active
    if not enabled():
        yield lambda text=None, advance=1: None
        return
    if _active is not None:
        bar, task = _active
        bar.update(task, description=what, total=total, completed=0)

        def step(text=None, advance=1):
            bar.update(task, advance=advance, description=f"{what}: {text}" if text else None)

        yield step
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=Console(stderr=True), transient=True, redirect_stdout=False,
                   redirect_stderr=False)
    task = bar.add_task(what, total=total)

    def step(text=None, advance=1):
        bar.update(task, advance=advance, description=f"{what}: {text}" if text else None)

    bar.start()
    _active = (bar, task)
    try:
        yield step
    finally:
        _active = None
        bar.stop()
