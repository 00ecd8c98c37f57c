"""
Per-production launchers, desktop entries, plugin wiring and storage.

For each production in the ``workstation`` pillar, one POSIX sh launcher per app
command at ``{install_root}/productions/<production>/bin/<command>`` sets the
production's environment and starts the app; ``studio-launch`` lists and starts
them. See docs/launchers.md.

License variables come from ``licenses.environment()`` (the licenses feature:
the license servers' variables, the same for every app); launchers carry none
where that module is not loaded.

Every function raises ``CommandExecutionError`` when it cannot do its job (a
pillar error, with its path and the fix; a link or folder in the way; a full
disk), so ``salt-call`` exits non-zero. Credentials never appear in a return.
"""

from pathlib import Path

from salt.exceptions import CommandExecutionError

from salt_workstation.errors import WorkstationError
from salt_workstation.launchers import contract, effects, plan, status
from salt_workstation.pillar import path_of

__virtualname__ = "launchers"
__func_alias__ = {"plan_": "plan"}


def __virtual__():
    return __virtualname__


def _config(config=None):
    return config if config is not None else __salt__["workstation.config"](unmask=True)


def _license_source(config):
    """app, version -> {NAME: value} of the license servers; licenses.environment asked once per call."""
    found = {}

    def environment(app, version):  # the licenses feature sets the same servers for every app
        if "variables" not in found:
            variables = (
                __salt__["licenses.environment"](config=config)
                if "licenses.environment" in __salt__
                else {}
            )
            found["variables"] = variables if isinstance(variables, dict) else {}
        return found["variables"]

    return environment


def _valid(config, production):
    """The production's launchers may be written: else CommandExecutionError with every pillar problem."""
    problems = [str(issue) for issue in contract.production_issues(config, production)]
    if problems:
        raise CommandExecutionError(
            f"The launchers of {production} were not updated; nothing of it was touched. "
            "Fix the pillar:\n" + "\n".join(f"- {problem}" for problem in problems)
        )


def _untouched(production, exc):
    where = path_of("productions", production)
    return CommandExecutionError(
        f"The launchers of {production} ({where}) were not updated; nothing of it "
        f"was touched: {exc}"
    )


def _files(config, production):
    _valid(config, production)
    try:
        return plan.desired_files(
            config, production, _license_source(config), icon=status.find_icon
        )
    except WorkstationError as exc:
        raise _untouched(production, exc) from exc


def _launcher(config, production, command):
    _valid(config, production)
    found = plan.launchers(config, production, _license_source(config))
    for launcher in found:
        if launcher.command == command:
            return launcher
    known = ", ".join(sorted(launcher.command for launcher in found)) or "none"
    raise CommandExecutionError(
        f"production {production} has no launcher {command} (it has: {known})"
    )


def plan_(config=None):
    """
    ``launchers.plan`` (named ``plan_`` here so as not to shadow the ``plan`` import).

    The data the ``workstation.launchers`` SLS lays its states out from:
    storage client packages, mounts to release, per production its mounts and
    the app versions its launchers wait for, the productions to keep, and
    whether the machine gets ``studio-launch``. Holds no secret.

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.plan
    """
    config = _config(config)
    manifest = (
        status.read_manifest(plan.Settings.from_config(config)) if contract.usable(config) else {}
    )
    return plan.formula(config, manifest)


def environment(production, command, config=None):
    """
    The environment the launcher ``command`` of ``production`` sets, as a mapping.

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.environment nightfall houdini
    """
    return _launcher(_config(config), production, command).env


def render(production, command, config=None):
    """
    The text of the launcher ``{install_root}/productions/<production>/bin/<command>``.

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.render nightfall houdini
    """
    config = _config(config)
    _launcher(config, production, command)
    path = plan.Settings.from_config(config).production_bin(production) / command
    return _files(config, production)[path].data.decode()


def diff(production, test=False, config=None):
    """
    What ``sync`` would write and remove for ``production``, without changing
    anything: ``{"changes": {"written": [...], "removed": [...]}, "manifest_current": bool}``
    (``manifest_current`` False: only its record in the manifest is out of date).
    ``test=True`` counts a released mount that is still mounted as unmounted
    (in a dry run its unmount state has not run).

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.diff nightfall
    """
    config = _config(config)
    files = _files(config, production)
    try:
        found = status.pending(config, production, files, test=test)
    except WorkstationError as exc:
        raise _untouched(production, exc) from exc
    return {"changes": _written_removed(found), "manifest_current": found.manifest is None}


def _written_removed(found):
    """Both keys always, so that a converged production answers `[]` rather than `{}`."""
    return {"written": [], "removed": [], **found.report()}


def sync(production, test=False, config=None):
    """
    Write ``production``'s launchers, plugin wiring and desktop entries, and
    remove those it no longer has. Returns ``{"written": [...], "removed": [...]}``
    (both lists empty when the production is converged); ``test=True`` writes
    nothing and returns the same.

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.sync nightfall test=True
    """
    config = _config(config)
    files = _files(config, production)
    try:
        found = status.pending(config, production, files, test=test)
    except WorkstationError as exc:
        raise _untouched(production, exc) from exc
    if not test:
        try:
            effects.apply(plan.Settings.from_config(config), found, production)
        except WorkstationError as exc:
            raise CommandExecutionError(
                f"The launchers of {production} ({path_of('productions', production)}) "
                f"could not all be updated: {exc}"
            ) from exc
    return _written_removed(found)


def _leftovers(config, keep, test):
    """status.leftovers, keep defaulting to the pillar's productions (nothing on a pillar this broken)."""
    if keep is None and not contract.usable(config):
        return plan.Changes()  # a pillar this broken removes nothing; workstation.validate says why
    keep = list(config["productions"]) if keep is None else list(keep)
    try:
        return status.leftovers(config, keep, test=test)
    except WorkstationError as exc:
        raise CommandExecutionError(
            f"Nothing of the productions no longer in {path_of('productions')} was removed: {exc}"
        ) from exc


def leftovers(keep=None, test=False, config=None):
    """
    What ``prune`` would remove, without changing anything:
    ``{"removed": [...], "manifest_current": bool}``. ``keep`` defaults to the
    pillar's productions.

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.leftovers
    """
    found = _leftovers(_config(config), keep, test)
    return {
        "removed": found.report().get("removed", []),
        "manifest_current": found.manifest is None,
    }


def prune(keep=None, test=False, config=None):
    """
    Remove what productions not in ``keep`` (default: the pillar's) left behind:
    their folder, desktop entries, menu and emptied mount points. Returns the
    paths; ``test=True`` removes nothing and returns the same. A link where a
    production folder belongs stops it before anything is removed.

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.prune test=True
    """
    config = _config(config)
    found = _leftovers(config, keep, test)
    if not test:
        try:
            effects.apply(plan.Settings.from_config(config), found)
        except WorkstationError as exc:
            raise CommandExecutionError(
                f"What productions no longer in {path_of('productions')} left was not all "
                f"removed: {exc}"
            ) from exc
    return found.report().get("removed", [])


def command(path=None, test=False, config=None):
    """
    Write ``studio-launch`` (default ``{os:bin_dir}/studio-launch``). Returns
    ``{"changed": bool, "path": ...}``; ``test=True`` writes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.command
    """
    settings = plan.Settings.from_config(_config(config))
    path = Path(path) if path else settings.command
    entry = plan.studio_launch_entry(settings)
    try:
        changed = not status.matches(path, entry, settings.install_root)
        if changed and not test:
            effects.write_entry(path, entry, settings.install_root)
    except WorkstationError as exc:
        raise CommandExecutionError(f"studio-launch was not written to {path}: {exc}") from exc
    return {"changed": changed, "path": str(path)}


def credentials(production, mount, path=None, test=False, config=None):
    """
    Write the SMB credentials file of ``mount`` of ``production`` (mode 0600,
    in a 0700 folder) from the pillar, an ``sdb://<profile>/<key>`` reference
    there resolved with ``sdb.get`` now. Returns ``{"changed": bool}``, never
    the secret; ``test=True`` writes nothing. A changed secret (a rotation)
    rewrites the file: it is compared with the file itself.

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.credentials nightfall projects
    """
    config = _config(config)
    valid, _broken = plan.mounts(config, production)
    where = path_of("productions", production, "mounts", mount)
    if not any(m.name == mount and m.credentials_file for m in valid):
        raise CommandExecutionError(
            f"{where} is not a valid smb mount with credentials; run workstation.validate"
        )
    settings = plan.Settings.from_config(config)
    path = Path(path) if path else settings.credentials_file(production, mount)
    try:
        # an sdb:// reference among the credentials is resolved now, on this minion
        entry = plan.credentials_entry(
            config, production, mount, lambda uri: __salt__["sdb.get"](uri, strict=True)
        )
        changed = not status.credentials_current(settings, path, entry)
        if changed and not test:
            effects.write_credentials(settings, path, entry)
    except WorkstationError as exc:
        raise CommandExecutionError(f"The credentials of {where} were not written: {exc}") from exc
    return {"changed": changed}


def installed(config=None):
    """
    The productions whose launchers this workstation has, from the manifest:
    files written outside their folders and their mounts.

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.installed
    """
    return status.read_manifest(plan.Settings.from_config(_config(config)))
