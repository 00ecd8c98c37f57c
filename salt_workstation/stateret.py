"""Salt's state return, built one way for every state module of the extension."""

from __future__ import annotations


def new(name) -> dict:
    """A state return that says nothing happened (yet)."""
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def report(ret: dict, outcome: dict, test: bool, same: str, would: str, done: str, changes=None) -> dict:
    """An execution function's outcome as the state's return.

    outcome is {"error": ...}, {"changes": {...}} or {"changed": bool}; for the last,
    `changes` is what the state reports when something changed. test=True gives
    result None with the same changes a real run reports.
    """
    if "error" in outcome:
        ret.update(result=False, comment=outcome["error"])
        return ret
    found = outcome.get("changes") if changes is None else (changes if outcome.get("changed") else {})
    if not found:
        ret["comment"] = same
        return ret
    ret.update(changes=found, result=None if test else True, comment=would if test else done)
    if outcome.get("comment"):
        ret["comment"] += f" ({outcome['comment']})"
    return ret
