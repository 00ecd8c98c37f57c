"""
Per-production launchers, desktop entries, plugin wiring and storage.

For each production in the ``workstation`` pillar, one POSIX sh launcher per app
command at ``{install_root}/productions/<production>/bin/<command>`` sets the
production's environment and starts the app; ``studio-launch`` lists and starts
them. See docs/launchers.md.

License variables come from ``licenses.environment()`` (the licenses feature:
the license servers' variables, the same for every app); launchers carry none
where that module is not loaded.
"""

from pathlib import Path

from salt_workstation import launchers as core
from salt_workstation.errors import WorkstationError

__virtualname__ = "launchers"


def __virtual__():
    return __virtualname__


def _config(config=None):
    return config if config is not None else __salt__["workstation.config"](unmask=True)


def _license_source(config):
    """app, version -> {NAME: value} of the license servers; licenses.environment asked once per call."""
    found = {}

    def environment(app, version):  # the licenses feature sets the same servers for every app
        if "variables" not in found:
            variables = __salt__["licenses.environment"](config=config) if "licenses.environment" in __salt__ else {}
            found["variables"] = variables if isinstance(variables, dict) else {}
        return found["variables"]

    return environment


def _problems(config, production):
    return [str(issue) for issue in core.production_issues(config, production)]


def _launcher(config, production, command):
    for launcher in core.launchers(config, production, _license_source(config)):
        if launcher.command == command:
            return launcher
    known = ", ".join(sorted(l.command for l in core.launchers(config, production))) or "none"
    raise ValueError(f"production {production} has no launcher {command} (it has: {known})")


def formula_data(config=None):
    """
    The states ``workstation.launchers`` renders: released mounts, then per
    production its SMB credentials, mounts and launchers, then the removal of
    productions that left the pillar, then ``studio-launch``.

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.formula_data
    """
    config = _config(config)
    manifest = {}
    if isinstance(config.get("install_root"), str) and config["install_root"].startswith("/"):
        manifest = core.read_manifest(core.Settings.from_config(config))
    return core.formula_data(config, manifest)


def environment(production, command, config=None):
    """
    The environment the launcher ``command`` of ``production`` sets, as a
    mapping (or ``{"error": [...]}`` with the pillar paths to fix).

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.environment nightfall houdini
    """
    config = _config(config)
    problems = _problems(config, production)
    if problems:
        return {"error": problems}
    try:
        return _launcher(config, production, command).env
    except ValueError as exc:
        return {"error": [str(exc)]}


def render(production, command, config=None):
    """
    The text of the launcher ``{install_root}/productions/<production>/bin/<command>``.

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.render nightfall houdini
    """
    config = _config(config)
    problems = _problems(config, production)
    if problems:
        return {"error": problems}
    settings = core.Settings.from_config(config)
    path = settings.production_bin(production) / command
    try:
        _launcher(config, production, command)
    except ValueError as exc:
        return {"error": [str(exc)]}
    return core.desired_files(config, production, _license_source(config))[path].data.decode()


def sync(production, test=False, config=None):
    """
    Write ``production``'s launchers, plugin wiring and desktop entries, and
    remove those it no longer has. ``test=True`` writes nothing and returns the
    same changes. Returns ``{"written": [...], "removed": [...]}`` (empty keys
    left out), ``{"error": [...]}`` (the pillar problems; nothing was touched) or
    ``{"failed": "..."}`` (a link or folder in the way, a full disk).

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.sync nightfall test=True
    """
    config = _config(config)
    problems = _problems(config, production)
    if problems:
        return {"error": problems}
    try:
        files = core.desired_files(config, production, _license_source(config))
        return core.sync(config, production, files, test=test)
    except WorkstationError as exc:
        return {"failed": str(exc)}


def prune(keep=None, test=False, config=None):
    """
    Remove what productions not in ``keep`` (default: the pillar's) left behind:
    their folder, desktop entries, menu and mount points. Returns the paths, or
    ``{"error": "..."}`` (a link where a production folder belongs: nothing was removed).

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.prune test=True
    """
    config = _config(config)
    if keep is None:
        if not isinstance(config.get("productions"), dict):
            return []  # a pillar this broken removes nothing; workstation.validate says why
        keep = list(config["productions"])
    try:
        return core.prune(config, keep, test=test)
    except WorkstationError as exc:
        return {"error": str(exc)}


def command(path=None, test=False, config=None):
    """
    Write ``studio-launch`` (default ``{os:bin_dir}/studio-launch``). Returns
    ``{"changed": bool, "path": ...}`` or ``{"error": ...}``.

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.command
    """
    settings = core.Settings.from_config(_config(config))
    path = Path(path) if path else settings.command
    entry = core.Entry(core.render.studio_launch(str(settings.productions)).encode(), 0o755)
    try:
        return {"changed": core.ensure(path, entry, test, settings.install_root), "path": str(path)}
    except WorkstationError as exc:
        return {"error": str(exc)}


def credentials(production, mount, path=None, test=False, config=None):
    """
    Write the SMB credentials file of ``mount`` of ``production`` (mode 0600,
    in a 0700 folder) from the pillar. Returns ``{"changed": bool}`` or
    ``{"error": ...}``; never the secret.

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.credentials nightfall projects
    """
    config = _config(config)
    valid, _broken = core.mounts(config, production)
    if not any(m.name == mount and m.credentials for m in valid):
        where = core.path_of("productions", production, "mounts", mount)
        return {"error": f"{where} is not a valid smb mount with credentials; run workstation.validate"}
    try:
        return {"changed": core.ensure_credentials(config, production, mount, test, Path(path) if path else None)}
    except WorkstationError as exc:
        return {"error": str(exc)}


def installed(config=None):
    """
    The productions whose launchers this workstation has, from the manifest:
    files written outside their folders and their mounts.

    CLI Example:

    .. code-block:: bash

        salt '*' launchers.installed
    """
    return core.read_manifest(core.Settings.from_config(_config(config)))
