"""The identity of a baked image: what went into it, written at bake, read back by the `workstation_image` grain.

The bake apply records the extension version, the productions, every app version
baked in and a digest of their catalog entries. A machine cloned from the image
carries the file; its report compares it with what its pillar wants now, so an
image that lacks versions (a boot apply would download them) is flagged.
"""

from __future__ import annotations

import hashlib
import json
import time

from salt_workstation import __version__, pillar, safefs
from salt_workstation.errors import UnsafePath, WorkstationError

IDENTITY_FILE = "/etc/salt-workstation/image.json"  # also `workstation:os:image_identity`
# What identifies a bake; the bake time is when it happened, not part of what it is.
IDENTITY_KEYS = ("extension_version", "catalog_digest", "productions", "apps")


def identity(config) -> dict:
    """What an image baked with this merged config holds (without the bake time)."""
    wanted = pillar.wanted_versions(config)
    entries = {f"{w.app} {w.version}": w.spec for w in wanted}
    digest = hashlib.sha256(
        json.dumps(entries, sort_keys=True, default=str).encode("utf-8")
    ).hexdigest()
    productions = config.get("productions")
    return {
        "extension_version": __version__,
        "catalog_digest": f"sha256:{digest}",
        "productions": sorted(map(str, productions)) if isinstance(productions, dict) else [],
        "apps": pillar.wanted_by_app(config),
    }


def read(path: str = IDENTITY_FILE) -> dict | None:
    """The identity recorded at path; None when there is none, or it is not one (not JSON, a link)."""
    try:
        data = safefs.read_file(path)
    except (UnsafePath, OSError):
        return None
    if data is None:
        return None
    try:
        recorded = json.loads(data)
    except ValueError:
        return None
    return recorded if isinstance(recorded, dict) else None


def changes(path: str, wanted: dict) -> dict:
    """What recording `wanted` at path changes ({} when the same identity is recorded already)."""
    current = read(path) or {}
    differs = {
        key: {"old": current.get(key), "new": wanted[key]}
        for key in IDENTITY_KEYS
        if current.get(key) != wanted[key]
    }
    return {"image_identity": path, **differs} if differs else {}


def record(path: str, wanted: dict, now: float | None = None) -> dict:
    """Write wanted, with the bake time, at path (one rename); returns what was written."""
    written = {
        "baked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        **{key: wanted[key] for key in IDENTITY_KEYS},
    }
    try:
        safefs.write_file(
            path, (json.dumps(written, indent=2, sort_keys=True) + "\n").encode("utf-8"), 0o644
        )
    except OSError as exc:
        raise safefs.disk_error(exc, path) from None
    except WorkstationError as exc:
        raise WorkstationError(
            f"the image identity was not written: {exc} ({pillar.path_of('os', 'image_identity')})"
        ) from None
    return written


def lacks(image: dict | None, wanted_by_app: dict) -> list[str]:
    """'app version' the pillar wants that the image was not baked with ([] without an image)."""
    if not isinstance(image, dict):
        return []
    baked = image.get("apps") if isinstance(image.get("apps"), dict) else {}
    return [
        f"{app} {version}"
        for app, versions in sorted(wanted_by_app.items())
        for version in versions
        if version not in (baked.get(app) or [])
    ]
