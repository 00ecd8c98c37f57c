"""Salt's state return, built one way for every state module of the extension."""

from __future__ import annotations

from collections.abc import Callable


def new(name) -> dict:
    """A state return that says nothing happened (yet)."""
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def converge(
    name,
    *,
    changes: Callable[[], dict],
    act: Callable[[], object],
    test: bool,
    same: str,
    would,
    done,
    errors: tuple,
    failed: str | Callable[[dict, Exception], dict],
) -> dict:
    """The five steps every state of the extension takes (the shape of saltext-vault's states):

    1. read the current state: `changes()` returns what differs, as the state's changes;
    2. return early, with `same`, when nothing differs;
    3. those changes are the state's changes, the same whether predicted or done;
    4. under test=True, result None with exactly those changes and `would`;
    5. act (`act()`) and report `done`.

    `would` and `done` are text, or a function of the changes. `errors` are the exceptions that
    mean an execution function failed (Salt's CommandExecutionError and SaltInvocationError: this
    core module does not import Salt); `failed(ret, error)` words the failure (result False), or
    `failed` is the text the error follows ("<failed>: <error>").
    """
    ret = new(name)
    try:
        differs = changes()
        if not differs:
            ret["comment"] = same
            return ret
        ret["changes"] = differs
        if test:
            ret.update(result=None, comment=would(differs) if callable(would) else would)
            return ret
        act()
    except errors as error:
        ret["changes"] = {}
        if isinstance(failed, str):
            ret.update(result=False, comment=f"{failed}: {error}")
            return ret
        return failed(ret, error)
    ret["comment"] = done(ret["changes"]) if callable(done) else done
    return ret
