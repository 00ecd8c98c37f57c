"""Placeholder until the licenses issue lands: its pillar section has no checks yet."""


def check(config) -> list:
    return []
