"""What failed inside a run, as its exception tells it: the cause, the tasks, the parts."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import State, TaskRun

FAILED_TASK_NOTE = "Failed task: "


def failure_of(state: State) -> BaseException | None:
    """The exception behind a failed or crashed state, when the state carries one."""
    if state.data is None:
        return None
    # _sync: in an async flow's hook (elt's) Prefect would hand back a coroutine instead.
    exc = state.result(raise_on_failure=False, _sync=True)  # type: ignore[call-overload]
    return exc if isinstance(exc, BaseException) else None


def failure_reason(state: State) -> str:
    """The exception type and message behind a state, or the state's own message."""
    exc = failure_of(state)
    if exc is not None:
        return f"{type(exc).__name__}: {exc}"
    return state.message or state.name or "unknown"


def failed_parts(exc: BaseException | None) -> list[str]:
    """What failed inside the run: the tasks noted on the exception, then the tables or dbt
    nodes the exception names (`failures`), each once."""
    if exc is None:
        return []
    tasks = [
        note.removeprefix(FAILED_TASK_NOTE)
        for note in getattr(exc, "__notes__", [])
        if note.startswith(FAILED_TASK_NOTE)
    ]
    return list(dict.fromkeys([*tasks, *getattr(exc, "failures", [])]))


def note_failed_task(task: Any, task_run: TaskRun, state: State) -> None:
    """`on_failure` hook for tasks: name the task on its exception for the flow's alert."""
    exc = failure_of(state)
    if exc is not None:
        exc.add_note(f"{FAILED_TASK_NOTE}{task_run.name}")
