"""Where output goes: results (tables, task lists) to stdout, so `chexbal info > counts.txt` keeps
them; progress bars, notices and errors to stderr. One look for progress bars across every stage."""

from __future__ import annotations

import math
import os
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# soft_wrap: a message is one line however long its paths (the terminal wraps it), so that a log or a
# pipe can be searched for it; rich would otherwise break it at 80 columns wherever output is no terminal.
console = Console(stderr=True, soft_wrap=True)  # progress, notices, errors

# Off a terminal rich also squeezes a table into 80 columns, until gan-eval's 14 columns read "0.…" in
# a log; there a table may be as wide as this (COLUMNS, when set, still decides).
TABLE_WIDTH_OFF_A_TERMINAL = 240


def tables_fit_off_a_terminal(out: Console) -> Console:
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = TABLE_WIDTH_OFF_A_TERMINAL
    return out


results = tables_fit_off_a_terminal(Console(soft_wrap=True))  # tables and lists a user may redirect


def bar(disable: bool = False) -> Progress:
    return LoggedProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
        transient=False,
    )


class LoggedProgress(Progress):
    """A progress bar that, where stderr is a file (an experiment task's log), prints a line per update
    instead, at most one per task every EVERY seconds and always the last: rich draws nothing into a
    file until the work ends, so a log of an hour-long training would stay empty for that hour."""

    EVERY = 30.0

    def __init__(self, *columns, console: Console, disable: bool = False, **options) -> None:
        self.as_lines = not disable and not console.is_terminal
        # rich's own bar stays off in a file: it would only repeat the last line at the end
        super().__init__(*columns, console=console, disable=disable or self.as_lines, **options)
        self.printed_at: dict[TaskID, float] = {}

    def update(self, task_id: TaskID, **changes) -> None:
        super().update(task_id, **changes)
        if self.as_lines:
            self.print_line(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        if self.as_lines:
            self.print_line(task_id)

    def print_line(self, task_id: TaskID) -> None:
        task = next(t for t in self.tasks if t.id == task_id)
        now = time.monotonic()
        if not task.finished and now - self.printed_at.get(task_id, -math.inf) < self.EVERY:
            return
        self.printed_at[task_id] = now
        minutes, seconds = divmod(int(task.elapsed or 0), 60)
        done = f"{task.completed:g}/{task.total:g}" if task.total is not None else f"{task.completed:g}"
        words = [task.description, done, task.fields.get("note", ""), f"({minutes}:{seconds:02d} elapsed)"]
        self.console.print(" ".join(w for w in words if w), highlight=False)
