"""
The NVIDIA driver's own states. ``workstation.gpu`` writes them out beside
Salt's ``pkg.installed`` (the kernel headers, the driver packages pinned and
held) from the data of ``gpu.plan``:

.. code-block:: yaml

    workstation-gpu-nouveau-blacklisted:
      gpu.nouveau_blacklisted:
        - name: /etc/modprobe.d/workstation-nouveau.conf
        - content: "blacklist nouveau\\n"

    workstation-gpu-initramfs-rebuilt:
      gpu.initramfs_rebuilt:
        - name: update-initramfs
        - argv: [update-initramfs, -u, -k, all]
        - onchanges:
          - gpu: workstation-gpu-nouveau-blacklisted

    workstation-gpu-reboot-signalled:
      gpu.reboot_signalled:
        - name: nvidia-driver-580-open
        - branch: "580"
        - flavor: open

Each state reads the machine first, returns when nothing differs, answers
``test=True`` with result None and exactly the changes a real run makes, and
acts through the ``gpu`` execution module. A failure is result False with a
comment naming what failed and the pillar path (``workstation:gpu``).
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

from salt_workstation import stateret
from salt_workstation.gpu.plan import loaded_matches
from salt_workstation.pillar import path_of

__virtualname__ = "gpu"

SECTION = path_of("gpu")
_ERRORS = (CommandExecutionError, SaltInvocationError)


def __virtual__():
    return __virtualname__


def _failed(ret, what, exc, path=SECTION):
    ret.update(result=False, changes={}, comment=f"{what}: {exc} ({path})")
    return ret


def not_managed(name, comment, errors=None):
    """
    Nothing to manage (no GPU, or not NVIDIA: succeeds and says why), or a
    pillar that cannot be followed (fails with every error and its path).
    """
    ret = stateret.new(name)
    ret["comment"] = comment
    if errors:
        ret["result"] = False
    return ret


def _converge(name, read, changes, act, same, would, done, failed):
    """stateret.converge for a state whose read() is True when all is right, with fixed changes."""
    return stateret.converge(
        name,
        changes=lambda: {} if read() else changes,
        act=act,
        test=__opts__["test"],
        same=same,
        would=would,
        done=done,
        errors=_ERRORS,
        failed=lambda ret, exc: _failed(ret, failed, exc),
    )


def nouveau_blacklisted(name, content):
    """
    Keep nouveau off the NVIDIA card: the modprobe file ``name`` holds ``content``
    (written atomically, mode 0644, never through a link). Its changes trigger
    ``gpu.initramfs_rebuilt`` (onchanges), so the initramfs is rebuilt only when
    this file changed.
    """
    return _converge(
        name,
        read=lambda: __salt__["gpu.blacklisted"](name, content),
        changes={"blacklist": name},
        act=lambda: __salt__["gpu.blacklist"](name, content),
        same=f"nouveau is blacklisted in {name}",
        would=f"nouveau would be blacklisted in {name}",
        done=f"nouveau blacklisted in {name}",
        failed="nouveau could not be blacklisted",
    )


def initramfs_rebuilt(name, argv):
    """
    Rebuild the initramfs with ``argv`` (``name`` is the tool). Use with
    ``onchanges``: it runs every time it is called. Without the tool installed
    there is no initramfs, and nothing to do.
    """
    ret = stateret.new(name)
    if __salt__["cmd.which"](argv[0]) is None:
        ret["comment"] = f"{argv[0]} is not installed: no initramfs to rebuild"
        return ret
    command = " ".join(argv)
    ret["changes"] = {"rebuilt": command}
    if __opts__["test"]:
        ret.update(result=None, comment=f"The initramfs would be rebuilt ({command})")
        return ret
    try:
        outcome = __salt__["gpu.rebuild_initramfs"](argv)
    except _ERRORS as exc:
        return _failed(ret, "The initramfs was not rebuilt", exc)
    if not outcome["ran"]:
        ret.update(changes={}, comment=outcome["output"])
    else:
        ret["comment"] = f"The initramfs was rebuilt ({command})"
    return ret


def module_stream_installed(name):
    """
    dnf module stream ``name`` (``nvidia-driver:580-open``) enabled and its
    default profile installed: the stream locks the driver branch.
    """
    return _converge(
        name,
        read=lambda: __salt__["gpu.module_stream_installed"](name),
        changes={"module_stream": name},
        act=lambda: __salt__["gpu.install_module_stream"](name),
        same=f"dnf module stream {name} is installed",
        would=f"dnf module stream {name} would be installed",
        done=f"dnf module stream {name} installed",
        failed=f"dnf module stream {name} was not installed",
    )


def reboot_signalled(name, branch, flavor, version=None, reboot=False, notes=None):
    """
    Say when the NVIDIA driver OS package ``name`` installed is not the one
    loaded: in the comment, and as the event ``workstation/gpu/reboot-required``.
    Changes nothing (a pending reboot is not a change, so a converged run has
    none), unless ``reboot`` (pillar workstation:gpu:reboot) asks for the
    reboot: then it schedules one in a minute.
    """
    ret = stateret.new(name)
    wanted = version or f"branch {branch}"
    note = "".join(f"; {line}" for line in notes or [])
    try:
        loaded = __salt__["gpu.loaded"]()
        installed = __salt__["gpu.installed_version"](name)
        pending = __salt__["gpu.reboot_required"](name, flavor)
    except _ERRORS as exc:
        return _failed(
            ret, "The loaded NVIDIA driver could not be compared with the installed one", exc
        )
    if __opts__["test"]:
        # Before the install runs, the wanted driver stands in for the one it will install.
        pending = pending or not loaded_matches(loaded, branch, version, flavor)
    if not pending:
        ret["comment"] = (
            f"NVIDIA driver {installed or wanted} ({flavor}) is loaded: no reboot needed{note}"
        )
        return ret
    loaded_text = (
        f"{loaded['version']} ({loaded['kernel_module'] or 'flavour unknown'})"
        if loaded["version"]
        else "no NVIDIA module"
    )
    if reboot:
        ret["changes"] = {"reboot": "scheduled in 1 minute"}
    if __opts__["test"]:
        ret["result"] = None if reboot else True
        ret["comment"] = (
            f"A reboot will be needed to load NVIDIA driver {wanted} ({flavor}); loaded now: "
            f"{loaded_text}"
            + (" (workstation:gpu:reboot would schedule it)" if reboot else "")
            + note
        )
        return ret
    try:
        sent = __salt__["gpu.signal_reboot"](name, flavor=flavor, schedule=reboot)
    except _ERRORS as exc:
        return _failed(ret, "The reboot was not signalled", exc, path_of("gpu", "reboot"))
    ret["comment"] = (
        f"REBOOT REQUIRED: NVIDIA driver {installed} ({flavor}) is installed, loaded now: {loaded_text}; "
        f"event {sent['event']} sent"
    )
    if reboot:
        ret["comment"] += "; reboot scheduled in 1 minute (workstation:gpu:reboot)"
    else:
        ret["comment"] += "; reboot when convenient (workstation:gpu:reboot is false)"
    ret["comment"] += note
    return ret


def runfile_installed(name, source, hash, options, conflicts, cache):
    """
    NVIDIA's runfile driver ``name`` (the version, 580.95.05) is installed:
    downloaded from ``source`` and checked against ``hash``, run with
    ``options`` (silent, DKMS), the runfile driver of another version
    uninstalled first. Fails, changing nothing, while an OS package of an
    NVIDIA driver (``conflicts``) is installed.
    """

    def changes():
        found = __salt__["gpu.install_runfile"](
            name, source, hash, options, conflicts, cache, test=True
        )
        return {"runfile": {"old": found["old"], "new": name}} if found["changed"] else {}

    return stateret.converge(
        name,
        changes=changes,
        act=lambda: __salt__["gpu.install_runfile"](name, source, hash, options, conflicts, cache),
        test=__opts__["test"],
        same=f"NVIDIA driver {name} is installed from its runfile",
        would=lambda c: (
            f"NVIDIA driver {name} would be installed from its runfile"
            + (f", replacing {c['runfile']['old']}" if c["runfile"]["old"] else "")
        ),
        done=lambda c: (
            f"NVIDIA driver {name} was installed from its runfile (DKMS)"
            + (f", replacing {c['runfile']['old']}" if c["runfile"]["old"] else "")
        ),
        errors=_ERRORS,
        failed=lambda ret, exc: _failed(
            ret,
            f"NVIDIA driver {name} was not installed from its runfile",
            exc,
            path_of("gpu", "runfile"),
        ),
    )
