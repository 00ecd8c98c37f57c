"""
Install, remove and verify DCC app versions side by side from the studio depot.

Apps land in ``{install_root}/apps/{app}/{version}``; the catalog, depot and
install_root come from the ``workstation`` pillar unless passed in.

:depends: libarchive-c (and the system's libarchive)
"""

import ctypes
import glob
import importlib.util
import logging
import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

from salt_workstation import pillar, units
from salt_workstation.engine import AppStore
from salt_workstation.errors import WorkstationError
from salt_workstation.progress import ProgressReporter

log = logging.getLogger(__name__)

__virtualname__ = "dcc"


# Loading libarchive-c looks the library up with `ldconfig -p` (a fork); dlopen by soname asks the
# loader's cache directly, so this check costs microseconds on every minion start.
LIBARCHIVE_SONAMES = ("libarchive.so.13", "libarchive.so")
MISSING_LIBARCHIVE = (
    "the dcc module needs the system's libarchive to unpack apps: install the OS package libarchive13 "
    "(Debian, Ubuntu) or libarchive (RHEL, Rocky), then restart the minion"
)


def _libarchive_missing():
    """Why unpacking cannot work on this minion, or None."""
    if importlib.util.find_spec("libarchive") is None:
        return "the dcc module needs the Python package libarchive-c: pip install salt-workstation pulls it in"
    for soname in (os.environ.get("LIBARCHIVE"), *LIBARCHIVE_SONAMES):
        if soname:
            try:
                ctypes.CDLL(soname)
                return None
            except OSError:
                continue
    return MISSING_LIBARCHIVE


def __virtual__():
    missing = _libarchive_missing()
    if missing:
        return False, missing
    return __virtualname__


def _config():
    return __salt__["workstation.config"](unmask=True)


def _store(install_root=None):
    config = _config()
    return AppStore(
        install_root or config["install_root"],
        limits=config.get("limits"),
        workers=pillar.install_workers(config),
    )


def _fetch_salt(url):
    """salt:// sources come through the minion's file client into its cache."""
    return __salt__["cp.cache_file"](url)


def _drop_cached(url):
    """A DCC archive is large: keep no second copy of it in the minion cache once installed."""
    cached = __salt__["cp.is_cached"](url) if url and url.startswith("salt://") else ""
    if cached:
        os.remove(cached)


def package_versions(names):
    """
    The installed version of each OS package in ``names`` ('' when absent).

    CLI Example:

    .. code-block:: bash

        salt '*' dcc.package_versions '[nvidia-driver, nice-dcv-server]'
    """
    found = __salt__["pkg.version"](*names) if names else {}
    if len(names) == 1:
        found = {names[0]: found}
    return {name: found.get(name) or "" for name in names}


def install_packages(packages, test=False):
    """
    Install OS packages ``{name: pinned version, or None for the repository's
    latest}`` from the configured repositories. Returns ``{"changes": {...},
    "versions": {...}}``; raises CommandExecutionError when the package manager
    fails or leaves a package other than wanted. ``test=True`` installs nothing
    and returns the same changes a real run reports (unpinned ones as "latest").

    CLI Example:

    .. code-block:: bash

        salt '*' dcc.install_packages '{nice-dcv-server: null, nice-xdcv: "2024.0-1"}' test=True
    """
    names = list(packages)
    changes = units.package_plan(packages, package_versions(names))
    if test or not changes:
        return {"changes": changes}
    targets = [
        name if packages[name] is None else {name: packages[name]}
        for name in names
        if name in changes.get("installed", {}) or name in changes.get("changed", {})
    ]
    try:
        __salt__["pkg.install"](pkgs=targets)
    except (CommandExecutionError, SaltInvocationError) as exc:
        raise CommandExecutionError(
            f"the package manager could not install {', '.join(names)}: {exc}"
        ) from None
    versions = package_versions(names)
    wrong = {
        name: versions[name] or "absent"
        for name, pinned in packages.items()
        if not versions[name] or (pinned and versions[name] != pinned)
    }
    if wrong:
        raise CommandExecutionError(f"after the install these packages are not as wanted: {wrong}")
    return {"changes": changes, "versions": versions}


def _install_packages(packages):
    """kind: packages apps: every package pinned, failures as WorkstationError for the engine."""
    try:
        install_packages(packages)
    except CommandExecutionError as exc:
        raise WorkstationError(str(exc)) from None


def resolve(app, version, spec=None, depot=None):
    """
    The validated spec of one app version, from ``spec`` or the pillar catalog.

    Raises a WorkstationError that names every pillar path at fault.

    CLI Example:

    .. code-block:: bash

        salt '*' dcc.resolve blender 4.2.3
    """
    config = _config()
    depot = depot or config["depot"]
    version_path = pillar.path_of("catalog", app, "versions", version)
    if spec is None:
        spec = pillar.catalog_entry(config.get("catalog"), app, str(version))
        if spec is None:
            raise WorkstationError(
                f"{pillar.path_of('catalog', app, 'versions')} has no entry {version}; add it there"
            )
    issues = pillar.check_version_spec(app, str(version), spec, version_path)
    if issues:
        raise WorkstationError("; ".join(str(issue) for issue in issues))
    return pillar.resolve_spec(app, str(version), spec, depot)


def list_installed(install_root=None):
    """
    Every app version installed under install_root, with its manifest summary.

    CLI Example:

    .. code-block:: bash

        salt '*' dcc.list_installed
    """
    return _store(install_root).installed()


def manifest(app, version, install_root=None):
    """
    The manifest summary of one installed version (None when not installed by us).

    CLI Example:

    .. code-block:: bash

        salt '*' dcc.manifest blender 4.2.3
    """
    return _store(install_root).manifest(app, str(version))


def status(app, version, spec=None, install_root=None, depot=None, deep=False):
    """
    Whether an app version is installed as the catalog describes it:
    ``installed``, ``absent``, ``changed`` (another build), ``damaged`` (a
    launcher gone, or with ``deep=True`` any file changed on disk) or
    ``foreign`` (a folder or symlink we did not make holds its place).

    CLI Example:

    .. code-block:: bash

        salt '*' dcc.status houdini 20.5.410
        salt '*' dcc.status houdini 20.5.410 deep=True
    """
    try:
        resolved = resolve(app, version, spec, depot)
        return _store(install_root).status(resolved, package_versions, deep=deep)
    except WorkstationError as exc:
        raise CommandExecutionError(f"{app} {version}: {exc}") from exc


def blocker(app, version, install_root=None):
    """
    Why salt-workstation will not write ``{install_root}/apps/{app}/{version}``
    (a symlink or a folder it did not install is there), or None.

    CLI Example:

    .. code-block:: bash

        salt '*' dcc.blocker houdini 20.5.410
    """
    return _store(install_root).blocker(app, str(version))


def install(app, version, spec=None, install_root=None, depot=None):
    """
    Install one app version from the depot: streamed, hash-checked, flushed to
    disk, promoted atomically. Returns the manifest; on any failure raises
    CommandExecutionError (salt-call exits non-zero) with a message that names
    the app, the version, the catalog entry and the fault, and nothing of the
    version is left on disk.

    CLI Example:

    .. code-block:: bash

        salt '*' dcc.install blender 4.2.3
    """
    resolved = None
    progress = ProgressReporter(_send_event, app, str(version), __opts__.get("id", ""))
    try:
        resolved = resolve(app, version, spec, depot)
        manifest = _store(install_root).install(
            resolved, fetch_salt=_fetch_salt, install_packages=_install_packages, progress=progress
        )
    except (WorkstationError, OSError) as exc:
        message = pillar.install_failure(
            app, version, exc if isinstance(exc, WorkstationError) else f"{exc.strerror or exc}"
        )
        # No log here: Salt logs the failure once (the state's result, or the job's error).
        progress("failed", error=message)
        raise CommandExecutionError(message) from None
    finally:
        for url in resolved.sources if resolved is not None else ():
            _drop_cached(url)
    log.info("installed %s %s (%s files)", app, version, manifest["files"])
    progress("done")  # the download's bytes, as the bars showed them: one total from start to end
    return manifest


# A `salt-call --local` with no minion daemon has no event bus: event.send then spends about a
# second on its IPC socket and returns False, and every progress event paid that second while the
# download waited (a 400 MiB install ran past 90 s instead of 4 s). So: look for the socket first,
# and let the first event that cannot be sent turn them off for the rest of this process.
_EVENTS_ON = "workstation.progress_events"


def _event_bus_reachable():
    if (
        not __opts__.get("local")
        or __opts__.get("use_master_when_local")
        or __opts__.get("ipc_mode") == "tcp"
    ):
        return True  # a minion daemon's own process, or a bus we cannot see from here: just try
    return bool(glob.glob(os.path.join(__opts__.get("sock_dir") or "", "minion_event_*_pull.ipc")))


def _send_event(tag, data):
    """Progress goes to the master's event bus (the local one when masterless); never fail, or slow, an install over it."""
    if _EVENTS_ON not in __context__:
        __context__[_EVENTS_ON] = _event_bus_reachable()
    if not __context__[_EVENTS_ON]:
        return
    try:
        sent = __salt__["event.send"](tag, data)
    except Exception:  # pylint: disable=broad-except
        log.debug("could not send the progress event %s", tag, exc_info=True)
        sent = False
    if sent is False:
        log.debug("no event bus takes install progress; no more progress events from this process")
        __context__[_EVENTS_ON] = False


def remove(app, version, install_root=None):
    """
    Remove one installed app version. Returns True when it was there.

    CLI Example:

    .. code-block:: bash

        salt '*' dcc.remove blender 4.1.1
    """
    try:
        return _store(install_root).remove(app, str(version))
    except (WorkstationError, OSError) as exc:
        raise CommandExecutionError(f"{app} {version} was not removed: {exc}") from None


def strangers(app, install_root=None):
    """
    What sits among ``app``'s versions that salt-workstation did not install
    (symlinks, folders without a manifest): retention and removal leave each alone.

    CLI Example:

    .. code-block:: bash

        salt '*' dcc.strangers houdini
    """
    return _store(install_root).strangers(app)


def retention(app, keep=None, retain=None, install_root=None):
    """
    Which versions of ``app`` a prune would remove, keeping ``keep`` and the
    ``retain`` most recently wanted others.

    CLI Example:

    .. code-block:: bash

        salt '*' dcc.retention blender keep='["4.2.3"]' retain=1
    """
    retain = _config()["retain"] if retain is None else retain
    remove_list, _ = _store(install_root).retention(app, [str(v) for v in keep or []], int(retain))
    return remove_list


def prune(app, keep=None, retain=None, install_root=None):
    """
    Remove the versions of ``app`` that :py:func:`retention` lists. Returns them.

    CLI Example:

    .. code-block:: bash

        salt '*' dcc.prune blender keep='["4.2.3"]' retain=1
    """
    retain = _config()["retain"] if retain is None else retain
    try:
        return _store(install_root).prune(app, [str(v) for v in keep or []], int(retain))
    except (WorkstationError, OSError) as exc:
        raise CommandExecutionError(f"{app}: old versions were not removed: {exc}") from None


def verify(app, version, deep=True, install_root=None):
    """
    Re-check an installed version's files against its manifest. ``deep``
    re-hashes every file; otherwise types, sizes and modes are compared.
    Returns ``ok``, how many ``files``, ``folders`` and (symbolic) ``links``
    the manifest lists, and the ``missing``, ``changed`` and ``extra`` paths.

    CLI Example:

    .. code-block:: bash

        salt '*' dcc.verify nuke 15.1v3
        salt '*' dcc.verify nuke 15.1v3 deep=False
    """
    return _store(install_root).verify(app, str(version), deep=deep)
