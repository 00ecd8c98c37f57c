"""Errors raised by the core. Each message names what failed and what to do."""


class WorkstationError(Exception):
    """Base class: anything the core refuses or fails to do."""


class DepotError(WorkstationError):
    """The depot could not deliver a source (down, missing file, bad URL)."""


class HashMismatch(WorkstationError):
    """The bytes read from the depot do not match the pillar's hash."""


class UnsafeArchive(WorkstationError):
    """The archive holds an entry that would escape or subvert its destination."""


class InstallError(WorkstationError):
    """An install step failed after the download (installer, launchers, disk)."""


class UnsafePath(WorkstationError):
    """A name is not one safe path component, or a symlink or foreign entry sits where ours belongs."""


class DiskError(WorkstationError):
    """The disk under a managed folder is full, failing or read-only."""


class LimitExceeded(WorkstationError):
    """A source is larger, slower or deeper than the configured limits allow."""
