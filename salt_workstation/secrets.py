"""Where the workstation pillar holds secrets, references to them in Salt's sdb, and what never shows them.

Every secret field also takes an `sdb://<profile>/<key>` reference (docs/secrets.md). The execution
modules resolve one with `reveal`, handing it Salt's `sdb.get` on the minion, at the moment the secret
is written to its file or handed to the vendor's tool; nothing else ever resolves one, so the value is
in no pillar, render, state argument, change, comment, event or return.

`redact` masks a config that is returned (`workstation.config`), so a job return, the job cache or a
TD's terminal never shows a license key, a registration code or a mount password that does sit in
pillar. `Digests` tells that a secret changed since it was last applied (a rotation) by comparing a
keyed digest, never a stored copy.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from salt_workstation import safefs
from salt_workstation.errors import WorkstationError
from salt_workstation.pillar import Issue, path_of

MASK = "**********"
# Pillar paths under `workstation:`, `*` standing for one name. A mapping there (SMB credentials)
# holds a secret in each of its values.
SECRET_PATHS = (
    "licenses:*:content",
    "licenses:*:product_key",
    "display:anyware:registration_code",
    "productions:*:mounts:*:credentials",
)
SDB_SCHEME = "sdb://"
# sdb://<profile>/<key>: Salt splits at the first `/` after the profile; the key may hold more.
_REFERENCE = re.compile(r"^sdb://([A-Za-z0-9_.-]+)/(\S+)$")


def is_secret(path: str) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in SECRET_PATHS)


def redact(config):
    """A deep copy of config with every value at a secret path replaced by MASK; an sdb reference,
    which is no secret, stays readable."""

    def walk(node, path):
        if not isinstance(node, dict):
            return node
        return {
            key: MASK
            if is_secret(f"{path}{key}") and value is not None and not is_reference(value)
            else walk(value, f"{path}{key}:")
            for key, value in node.items()
        }

    return walk(copy.deepcopy(config), "")


# --------------------------------------------------------------------------- sdb references


@dataclass(frozen=True)
class Reference:
    """`sdb://<profile>/<key>`: where in Salt's sdb a secret is kept."""

    uri: str
    profile: str
    key: str


def is_reference(value) -> bool:
    """Whether a pillar value is meant as an sdb reference (well-formed or not)."""
    return isinstance(value, str) and value.startswith(SDB_SCHEME)


def reference(value) -> Reference | None:
    """The well-formed reference `value` is, else None."""
    match = _REFERENCE.match(value) if isinstance(value, str) else None
    return Reference(value, match.group(1), match.group(2)) if match else None


def secret_values(config) -> Iterator[tuple[str, object]]:
    """(pillar path, value) of every secret in the config; each value of a mapping at a secret path."""

    def walk(node, parts):
        for key, value in node.items() if isinstance(node, dict) else ():
            here = (*parts, str(key))
            if is_secret(":".join(here)):
                if isinstance(value, dict):
                    yield from ((path_of(*here, inner), item) for inner, item in value.items())
                else:
                    yield path_of(*here), value
            else:
                yield from walk(value, here)

    yield from walk(config, ())


def sdb_profiles(*sources) -> set[str]:
    """The sdb profiles a minion knows: the mappings with a `driver` in its config (or its pillar,
    where Salt's sdb also looks)."""
    return {
        str(name)
        for source in sources
        if isinstance(source, dict)
        for name, value in source.items()
        if isinstance(value, dict) and "driver" in value
    }


def reference_issues(config, profiles: set[str] | None = None) -> list[Issue]:
    """Every sdb reference at a secret path that is malformed, or (when `profiles` is given: the
    minion's own) names a profile the minion does not define."""
    issues = []
    for path, value in secret_values(config):
        if not is_reference(value):
            continue
        found = reference(value)
        if found is None:
            issues.append(
                Issue(
                    path,
                    f"{value!r} is not an sdb reference Salt can read; write sdb://<profile>/<key>, "
                    "e.g. sdb://studio-vault/licenses/katana (docs/secrets.md)",
                )
            )
        elif profiles is not None and found.profile not in profiles:
            known = f" (it defines {', '.join(sorted(profiles))})" if profiles else ""
            issues.append(
                Issue(
                    path,
                    f"refers to sdb profile '{found.profile}', which this minion's config does not "
                    f"define{known}; add `{found.profile}: {{driver: ...}}` to the minion config "
                    "(docs/secrets.md) or fix the profile name",
                )
            )
    return issues


def reveal(value, path: str, resolve: Callable[[str], object] | None):
    """The secret a pillar field holds: its value, or what its sdb reference resolves to now.

    `resolve(uri)` is Salt's `sdb.get` on the minion (this module imports no Salt). Only the
    execution modules call this, right where the secret is written or handed to a vendor's tool.
    Errors name the pillar path and the reference, never a value.
    """
    if not is_reference(value):
        return value
    found = reference(value)
    if found is None:
        raise WorkstationError(
            f"{path}: {value!r} is not an sdb reference Salt can read; write sdb://<profile>/<key>"
        )
    if resolve is None:
        raise WorkstationError(f"{path}: {value} is an sdb reference and no sdb is at hand here")
    try:
        secret = resolve(found.uri)
    except Exception as err:  # a driver's own failure (Vault down, a profile missing): say which
        raise WorkstationError(
            f"{path}: {found.uri} could not be read from sdb profile '{found.profile}': "
            f"{type(err).__name__}: {err}"
        ) from None
    if secret is None or secret == "" or secret == found.uri:
        # Salt's sdb hands a URI back unchanged when it cannot use its profile.
        raise WorkstationError(
            f"{path}: {found.uri} resolves to nothing; put the secret at key '{found.key}' of sdb "
            f"profile '{found.profile}', or fix the reference (docs/secrets.md)"
        )
    return secret


# --------------------------------------------------------------------------- rotation


class Digests:
    """Keyed digests (HMAC-SHA256) of the secrets last applied, one file per secret, so that a
    rotated secret is seen without keeping it anywhere: a digest without this minion's key tells
    nothing about the secret. The key is random per minion, mode 0600 in a 0700 folder."""

    KEY = "digest.key"

    def __init__(self, folder: str):
        self.folder = os.fspath(folder)

    def _digest(self, holder: safefs.Dir, secret: str) -> str:
        key = holder.read_bytes(self.KEY)
        if not key:
            key = os.urandom(32)
            holder.write_file(self.KEY, key, 0o600)
        return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()

    def changed(self, name: str, secret: str) -> bool | None:
        """Whether `secret` differs from the one last recorded as `name`; None when none was."""
        try:
            holder = safefs.Dir.root(self.folder)
        except FileNotFoundError:
            return None
        with holder:
            recorded = holder.read_bytes(safefs.component(f"{name}.hmac"))
            if recorded is None or holder.read_bytes(self.KEY) is None:
                return None
            return not hmac.compare_digest(recorded.decode().strip(), self._digest(holder, secret))

    def record(self, name: str, secret: str) -> None:
        """Remember `secret` as `name`: its keyed digest, never the secret."""
        with safefs.Dir.root(self.folder, create=True, mode=0o700) as holder:
            holder.write_file(
                safefs.component(f"{name}.hmac"), self._digest(holder, secret).encode(), 0o600
            )
