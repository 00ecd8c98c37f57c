"""
The GPU and its NVIDIA driver: what the card is, which driver the pillar
wants, which one is installed and loaded, and whether a reboot is pending.

Thin: each function parses its arguments, calls the gpu capability
(``salt_workstation.gpu``: ``plan`` decides, ``status`` reads, ``effects``
changes the machine) and returns its data. A failure raises
``CommandExecutionError`` (bad arguments: ``SaltInvocationError``), so
``salt-call`` exits non-zero. Detection is ``salt_workstation.gpu_detect``
(also the ``workstation_gpus`` grain).
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

from salt_workstation import gpu_detect
from salt_workstation.errors import WorkstationError
from salt_workstation.gpu import effects as gpu_effects
from salt_workstation.gpu import plan as gpu_plan
from salt_workstation.gpu import status as gpu_status

__virtualname__ = "gpu"


def __virtual__():
    return __virtualname__


def _config(config=None):
    return config if config is not None else __salt__["workstation.config"](unmask=True)


def _text(value, what):
    if not isinstance(value, str) or not value:
        raise SaltInvocationError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _argv(argv):
    if (
        not isinstance(argv, (list, tuple))
        or not argv
        or not all(isinstance(arg, str) and arg for arg in argv)
    ):
        raise SaltInvocationError(
            f"argv must be a non-empty list of strings (never a shell line), got {argv!r}"
        )
    return list(argv)


def _stream(stream):
    module, _, wanted = _text(stream, "stream").partition(":")
    if not module or not wanted:
        raise SaltInvocationError(
            f"stream must be module:stream such as nvidia-driver:580-open, got {stream!r}"
        )
    return stream


def detect(root="/"):
    """
    The display controllers the ``workstation_gpus`` grain reports, read now
    (the grain is cached until the minion restarts or grains are refreshed).

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.detect
    """
    return gpu_detect.grains(root)


def loaded():
    """
    The NVIDIA kernel module loaded now: ``{"version": ..., "kernel_module": open|proprietary}``.

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.loaded
    """
    return gpu_status.loaded()


def installed_version(package):
    """
    The driver version (580.95.05) the OS package ``package`` installed, or None.

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.installed_version nvidia-driver-580-open
    """
    return gpu_status.installed_version(__salt__, _text(package, "package"))


def plan(config=None):
    """
    What the NVIDIA driver on this minion should be, for its grains and pillar:
    the data ``workstation.gpu`` lays its states out from (whether the driver is
    managed and why not, branch, flavour, packages and pins, kernel headers,
    module stream, nouveau blacklist, whether nvidia-persistenced starts now).

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.plan
    """
    # The loaded driver as the grain saw it at minion start (after the last reboot): tests and
    # image builds can declare it through grains.
    config = _config(config)
    kernels = gpu_status.installed_kernels(gpu_status.modules_dir(config))
    return gpu_plan.decide(config, __grains__, kernels=kernels)


def status(config=None):
    """
    The NVIDIA cards, the driver the pillar wants, the one installed and the one
    loaded, and whether a reboot is pending (``reboot_required``).

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.status
    """
    return gpu_status.report(__salt__, _config(config), __grains__)


def reboot_required(package, flavor=None):
    """
    True when the driver that OS package ``package`` installed is not the one
    loaded (a new driver waits for a reboot), False when they match or nothing
    is installed.

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.reboot_required nvidia-driver-580-open flavor=open
    """
    return gpu_status.reboot_required(__salt__, _text(package, "package"), flavor)


def blacklisted(path, content):
    """
    True when ``path`` is a plain file holding exactly ``content`` (a link
    there is never read through, and does not count).

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.blacklisted /etc/modprobe.d/workstation-nouveau.conf "blacklist nouveau"
    """
    return gpu_status.blacklisted(_text(path, "path"), _text(content, "content"))


def blacklist(path, content, test=False):
    """
    Write the nouveau blacklist ``content`` to ``path`` (atomically, mode 0644)
    when it differs. Returns ``{"changed": bool}``; ``test=True`` writes
    nothing. Raises ``CommandExecutionError`` when it cannot be written (a
    folder there, a full disk).

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.blacklist /etc/modprobe.d/workstation-nouveau.conf "blacklist nouveau"
    """
    if blacklisted(path, content):
        return {"changed": False}
    if not test:
        try:
            gpu_effects.write_blacklist(path, content)
        except WorkstationError as exc:
            raise CommandExecutionError(str(exc)) from exc
    return {"changed": True}


def rebuild_initramfs(argv):
    """
    Run the initramfs rebuild command ``argv`` (a list, never a shell).
    Returns ``{"ran": bool, "output": ...}``; ``ran`` is False when the tool
    is not installed (then there is no initramfs to rebuild). Raises
    ``CommandExecutionError`` when the command fails.

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.rebuild_initramfs '[update-initramfs, -u, -k, all]'
    """
    argv = _argv(argv)
    try:
        output = gpu_effects.rebuild_initramfs(__salt__, argv)
    except WorkstationError as exc:
        raise CommandExecutionError(str(exc)) from exc
    if output is None:
        return {"ran": False, "output": f"{argv[0]} is not installed: no initramfs to rebuild"}
    return {"ran": True, "output": output}


def module_stream_installed(stream):
    """
    Whether dnf module stream ``stream`` (nvidia-driver:580-open) is enabled
    with a profile installed. Raises ``CommandExecutionError`` without dnf.

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.module_stream_installed nvidia-driver:580-open
    """
    try:
        return gpu_status.module_stream_installed(__salt__, _stream(stream))
    except WorkstationError as exc:
        raise CommandExecutionError(str(exc)) from exc


def install_module_stream(stream):
    """
    ``dnf module install -y <stream>``: enables the stream (which locks the
    driver branch) and installs its default profile. Raises
    ``CommandExecutionError`` when dnf fails.

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.install_module_stream nvidia-driver:580-open
    """
    try:
        gpu_effects.install_module_stream(__salt__, _stream(stream))
    except WorkstationError as exc:
        raise CommandExecutionError(str(exc)) from exc
    return True


def signal_reboot(package, flavor=None, schedule=False):
    """
    Say that the driver OS package ``package`` installed waits for a reboot:
    send the event ``workstation/gpu/reboot-required`` (``{package, installed,
    loaded, flavor}``) and, with ``schedule=True``, reboot in one minute.
    Returns what was sent.

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.signal_reboot nvidia-driver-580-open flavor=open
    """
    package = _text(package, "package")
    sent = {
        "package": package,
        "installed": installed_version(package),
        "loaded": loaded(),
        "flavor": flavor,
    }
    try:
        gpu_effects.signal_reboot(
            __salt__, package, sent["installed"], sent["loaded"], flavor, bool(schedule)
        )
    except WorkstationError as exc:
        raise CommandExecutionError(str(exc)) from exc
    return {**sent, "event": gpu_effects.REBOOT_EVENT, "scheduled": bool(schedule)}


def _fetch_salt(url):
    """salt:// depot sources come through the minion's file client."""
    return __salt__["cp.cache_file"](url)


def runfile_version():
    """
    The driver version a runfile installed (its ``nvidia-installer --version``), or None.

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.runfile_version
    """
    return gpu_status.runfile_version(__salt__)


def install_runfile(version, source, hash, options, conflicts, cache, test=False):
    """
    Install NVIDIA's runfile ``source`` (driver ``version``) unless that
    version is installed: refuse when an OS package of an NVIDIA driver
    matching ``conflicts`` is installed, download it into ``cache`` checked
    against ``hash``, uninstall the runfile driver installed before (a version
    change), then run ``sh <runfile> <options>``. Returns ``{"changed", "old",
    "new"}``; ``test=True`` only checks and says what would change.

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.install_runfile 580.95.05 salt://depot/nvidia/NVIDIA-Linux-x86_64-580.95.05.run sha256:... '[--silent, --dkms]' '[nvidia-driver]' /var/cache/salt-workstation/gpu
    """
    version, source = _text(version, "version"), _text(source, "source")
    options = _argv(options)
    mixed = gpu_status.distro_drivers(__salt__, list(conflicts or []))
    if mixed:
        raise CommandExecutionError(
            f"NVIDIA's runfile {version} does not install beside the OS's NVIDIA driver packages "
            f"({', '.join(mixed)}): remove them first, or set workstation:gpu:source to distro or "
            "nvidia-repo to keep them"
        )
    installed = gpu_status.runfile_version(__salt__)
    if installed == version:
        return {"changed": False, "old": installed, "new": version}
    result = {"changed": True, "old": installed, "new": version}
    if test:
        return result
    limits = _config().get("limits") or {}
    try:
        # Downloaded and checked first: a bad source leaves the installed driver as it is.
        path = gpu_effects.fetch_runfile(
            source,
            _text(hash, "hash"),
            _text(cache, "cache"),
            _fetch_salt,
            idle=float(limits.get("depot_idle_timeout") or 60),
            deadline=float(limits.get("depot_deadline") or 14400),
        )
        try:
            if installed:
                gpu_effects.uninstall_runfile(__salt__, gpu_status.INSTALLER)
            gpu_effects.install_runfile(__salt__, path, options)
        finally:
            gpu_effects.remove_runfile(path)
    except WorkstationError as exc:
        raise CommandExecutionError(f"{exc} (workstation:gpu:runfile)") from exc
    now = gpu_status.runfile_version(__salt__)
    if now != version:
        raise CommandExecutionError(
            f"the runfile ran, but {gpu_status.INSTALLER} reports {now or 'no driver'} instead of "
            f"{version}: is workstation:gpu:runfile:source the file of {version}?"
        )
    return result
