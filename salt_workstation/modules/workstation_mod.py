"""
The whole workstation pillar: its merged config, validation, plan and inventory.

``workstation.validate`` and ``workstation.plan`` are what a pipeline TD runs
before an apply: every pillar error with its exact path, then per production
what an apply would install, keep, repair or remove.
"""

import json
import logging

from salt.exceptions import CommandExecutionError

from salt_workstation import config as ws_config
from salt_workstation import contract, keys, pillar, safefs, secrets, units
from salt_workstation import formula as ws_formula
from salt_workstation import image as ws_image
from salt_workstation import plan as ws_plan
from salt_workstation import report as ws_report
from salt_workstation import seal as ws_seal
from salt_workstation.engine import AppStore
from salt_workstation.errors import UnsafePath, WorkstationError

__virtualname__ = "workstation"

log = logging.getLogger(__name__)


def __virtual__():
    return __virtualname__


_MERGED = "workstation.merged_config"


def _merged():
    """The merged config, merged once per job although map.jinja (in every SLS) and every state ask
    for it. The cache is keyed by the pillar and grains it was merged from, so a pillar refreshed
    in a long-lived minion process is never served an old merge. Callers treat it as read-only."""
    inputs = json.dumps(
        [__pillar__.get("workstation"), [__grains__.get(name) for name in ws_config.GRAINS]],
        sort_keys=True,
        default=str,
    )
    cached = __context__.get(_MERGED)
    if cached is None or cached[0] != inputs:
        cached = __context__[_MERGED] = (
            inputs,
            ws_config.load(__pillar__.get("workstation"), __grains__),
        )
    return cached[1]


def config(unmask=False):
    """
    The merged workstation config: defaults, OS family parameters, pillar
    ``workstation:lookup``, then the ``workstation`` pillar. The formula's
    map.jinja reads this too. Secrets (license keys, registration codes, mount
    credentials) are masked unless ``unmask=True``: the formula needs no
    secret (the states read them from pillar where they use them), so only a
    person debugging on the minion itself should ever unmask.

    CLI Example:

    .. code-block:: bash

        salt '*' workstation.config
    """
    merged = _merged()
    return merged if unmask else secrets.redact(merged)


def validate(config=None):
    """
    Check the whole workstation pillar against the contract (docs/pillar.md).

    Returns ``{"valid": bool, "errors": [{"path": ..., "message": ...}]}``,
    every error with the pillar path to fix. A secret given as an
    ``sdb://<profile>/<key>`` reference must name a profile this minion's
    config defines; the secret itself is not read.

    CLI Example:

    .. code-block:: bash

        salt '*' workstation.validate
    """
    issues = contract.validate(
        config if config is not None else _merged(),
        sdb_profiles=secrets.sdb_profiles(__opts__, __pillar__),
    )
    return {"valid": not issues, "errors": [issue.as_dict() for issue in issues]}


def _store(merged):
    return AppStore(merged["install_root"])


def plan(config=None):
    """
    Per production, what ``state.apply workstation`` would do to each app
    (install, replace, repair, keep, or invalid with the errors), and per app
    which versions retention would remove. Reads only manifests: no network.

    CLI Example:

    .. code-block:: bash

        salt '*' workstation.plan
    """
    merged = config if config is not None else _merged()
    return ws_plan.plan(merged, _store(merged), __salt__["dcc.package_versions"])


def inventory():
    """
    Every installed app version, with the productions in this minion's pillar
    that use it.

    CLI Example:

    .. code-block:: bash

        salt '*' workstation.inventory
    """
    merged = _merged()
    return ws_plan.inventory(merged, _store(merged))


def formula_data(config=None):
    """
    The data the ``workstation.apps`` SLS renders states from: one install per
    wanted app version and one retention state per app.

    CLI Example:

    .. code-block:: bash

        salt '*' workstation.formula_data
    """
    merged = config if config is not None else _merged()
    return ws_plan.formula_data(merged, _store(merged))


def seed_formula_cache(saltenv="base"):
    """
    Copy the formula files of the extension installed here into Salt's file cache
    (``<cachedir>/files/<saltenv>``) where it lacks them, so that Salt's file client
    checks them against the master's by hash (one round trip each) instead of
    downloading them (three): the first apply of a machine cloned from a sealed
    image, whose Salt cache the seal emptied. A cached file is left as it is, and
    a copy that differs from the master's file is downloaded over. Returns the
    files copied. The formula's init.sls calls it first; it never fails an apply:
    a cache it cannot write to is logged, and Salt downloads the formula.

    CLI Example:

    .. code-block:: bash

        salt '*' workstation.seed_formula_cache
    """
    try:
        return ws_formula.seed(__opts__["cachedir"], saltenv)
    except (WorkstationError, OSError) as exc:
        log.warning(
            "The formula was not copied into Salt's file cache (%s): Salt downloads it", exc
        )
        return []


def keyring(path, key, fingerprint, armor=False, test=False):
    """
    Install a repository signing key at ``path`` only if its fingerprint is the
    pinned one: binary for apt's ``signed-by``, armoured (``armor=True``) for rpm.

    Returns ``{"changed": bool}``; raises CommandExecutionError when the key is not
    the pinned one (nothing is written then) or cannot be written. ``test=True`` writes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' workstation.keyring /etc/apt/keyrings/workstation-studio.gpg "$(cat studio.asc)" 0123...CDEF
    """
    try:
        wanted = keys.pinned_keyring(key, fingerprint)
    except WorkstationError as exc:
        raise CommandExecutionError(str(exc)) from None
    if armor:
        wanted = key.encode()
    try:
        current = safefs.read_file(path)
    except UnsafePath:
        current = None  # a link where the keyring belongs is replaced, never read through
    if current == wanted:
        return {"changed": False}
    if not test:
        try:
            safefs.write_file(path, wanted, 0o644)
        except WorkstationError as exc:  # a folder there, a full disk
            raise CommandExecutionError(str(exc)) from None
    return {"changed": True}


def unit_enabled(unit, test=False):
    """
    Enable a systemd unit for the next boot without starting it (works in an
    image build or chroot, where systemd is not running). Returns
    ``{"changed": bool}``; raises CommandExecutionError when systemctl fails.

    CLI Example:

    .. code-block:: bash

        salt '*' workstation.unit_enabled dcvserver.service
    """
    try:
        if units.is_enabled(unit):
            return {"changed": False}
        if not test:
            units.enable(unit)
    except WorkstationError as exc:
        raise CommandExecutionError(str(exc)) from None
    return {"changed": True}


def default_target(target, test=False):
    """
    Make systemd boot into ``target`` (``graphical.target`` for a desktop)
    without starting anything (works in an image build or chroot). Returns
    ``{"changed": bool, "old": ...}``; raises CommandExecutionError when
    systemctl fails.

    CLI Example:

    .. code-block:: bash

        salt '*' workstation.default_target graphical.target
    """
    try:
        old = units.default_target()
        if old == target:
            return {"changed": False, "old": old}
        if not test:
            units.set_default_target(target)
    except WorkstationError as exc:
        raise CommandExecutionError(str(exc)) from None
    return {"changed": True, "old": old}


def seal(root=None, test=False):
    """
    Make this baked image safe to clone (``workstation:os:seal``): remove the
    minion id and the minion's keys, truncate /etc/machine-id, remove the SSH
    host keys, Salt's cache and logs and temporary files, all below ``root``
    (default ``workstation:os:seal:root``). Refused unless ``workstation:phase``
    is ``bake``. Returns ``{"changes": {what: [paths]}}``; ``test=True`` removes nothing.

    CLI Example:

    .. code-block:: bash

        salt-call --local workstation.seal test=True
    """
    try:
        return {"changes": ws_seal.seal(_merged(), test=test, root=root)}
    except WorkstationError as exc:
        raise CommandExecutionError(str(exc)) from None


def image_plan(config=None):
    """
    Whether this apply records the image identity (only an image bake does) and where
    (``workstation:os:image_identity``): the data the ``workstation.image`` SLS renders from.

    CLI Example:

    .. code-block:: bash

        salt '*' workstation.image_plan
    """
    merged = config if config is not None else _merged()
    return {
        "record": merged.get("phase", "all") == "bake",
        "path": merged["os"].get("image_identity") or ws_image.IDENTITY_FILE,
    }


def image_identity(path=None, test=False):
    """
    Record what this image is baked with (extension version, productions, app versions,
    a digest of their catalog entries, the bake time) at ``path`` (default
    ``workstation:os:image_identity``); the ``workstation_image`` grain reads it back.
    Returns ``{"changes": {...}}``, empty when the same identity is recorded already;
    ``test=True`` writes nothing.

    CLI Example:

    .. code-block:: bash

        salt-call --local workstation.image_identity test=True
    """
    merged = _merged()
    path = path or image_plan(merged)["path"]
    wanted = ws_image.identity(merged)
    changes = ws_image.changes(path, wanted)
    if changes and not test:
        try:
            ws_image.record(path, wanted)
        except WorkstationError as exc:
            raise CommandExecutionError(str(exc)) from None
    return {"changes": changes}


# Feature functions a report includes when their issue has landed on this minion.
_REPORT_EXTRAS = {"gpu": "gpu.status", "licenses": "licenses.check", "display": "display.status"}


def report():
    """
    This minion's part of the fleet report (``salt-run workstation.report``):
    per production the wanted app versions and what an apply would do to them,
    the drift (what ``state.apply workstation test=True`` would change), and the
    GPU, license and display status where those features are configured.

    CLI Example:

    .. code-block:: bash

        salt 'ws-*' workstation.report
    """
    merged = _merged()
    extras = {}
    for name, function in _REPORT_EXTRAS.items():
        if function in __salt__ and merged.get(name):
            try:
                extras[name] = __salt__[function]()
            except Exception as exc:  # pylint: disable=broad-except
                extras[name] = {"error": str(exc)}
    baked = __grains__.get("workstation_image")
    if isinstance(baked, dict):  # cloned from a baked image: which wanted versions it lacks
        extras["image"] = {**baked, "lacks": ws_image.lacks(baked, pillar.wanted_by_app(merged))}
    drift = ws_report.drift_of(__salt__["state.apply"]("workstation", test=True))
    store = _store(merged)
    return ws_report.minion_summary(
        ws_plan.plan(merged, store, __salt__["dcc.package_versions"]),
        drift,
        extras,
        installed={app: list(versions) for app, versions in store.installed().items()},
    )
