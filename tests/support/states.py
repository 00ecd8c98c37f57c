"""Reading state.apply returns: by state ID, failures, changes."""


def by_id(state_data: dict) -> dict:
    """state.apply's return keyed by state ID instead of Salt's long low-state keys."""
    return {value["__id__"]: value for value in state_data.values()}


def failed(state_data: dict) -> dict:
    return {
        key: value["comment"]
        for key, value in by_id(state_data).items()
        if value["result"] is False
    }


def changed(state_data: dict) -> dict:
    return {key: value["changes"] for key, value in by_id(state_data).items() if value["changes"]}
