"""Placeholder until the launchers issue lands: its pillar section has no checks yet."""


def check(config) -> list:
    return []
