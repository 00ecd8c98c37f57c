"""
The NVIDIA driver's own states; workstation.gpu renders them around Salt's
pkg.installed (the driver packages, pinned and held) from ``gpu.formula_data``.

.. code-block:: yaml

    workstation-gpu-nouveau-blacklist:
      gpu.nouveau_blacklisted:
        - name: /etc/modprobe.d/workstation-nouveau.conf
        - content: "blacklist nouveau\\n"

    workstation-gpu-reboot:
      gpu.reboot_signalled:
        - name: nvidia-driver-580-open
        - branch: "580"
        - flavor: open

``test=True`` writes and runs nothing and reports the changes a real run makes.
"""

from salt_workstation import gpu as ws_gpu
from salt_workstation.errors import WorkstationError
from salt_workstation import stateret

__virtualname__ = "gpu"


def __virtual__():
    return __virtualname__


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


def nouveau_blacklisted(name, content):
    """
    Keep nouveau off the NVIDIA card: the modprobe file ``name`` holds ``content``.
    Its changes trigger ``gpu.initramfs_rebuilt`` (onchanges), so the initramfs is
    rebuilt only when this file changed.
    """
    ret = stateret.new(name)
    outcome = __salt__["gpu.blacklist"](name, content, test=__opts__["test"])
    if "error" in outcome:
        ret.update(result=False, comment=f"nouveau could not be blacklisted: {outcome['error']}")
        return ret
    if not outcome["changed"]:
        ret["comment"] = f"nouveau is blacklisted in {name}"
        return ret
    ret["changes"] = {"blacklist": name}
    if __opts__["test"]:
        ret.update(result=None, comment=f"nouveau would be blacklisted in {name}")
    else:
        ret["comment"] = f"nouveau blacklisted in {name}"
    return ret


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
    if __opts__["test"]:
        ret.update(result=None, changes={"rebuilt": command}, comment=f"The initramfs would be rebuilt ({command})")
        return ret
    outcome = __salt__["gpu.rebuild_initramfs"](argv)
    if "error" in outcome:
        ret.update(result=False, comment=outcome["error"])
    elif outcome["ran"]:
        ret.update(changes={"rebuilt": command}, comment=f"The initramfs was rebuilt ({command})")
    else:
        ret["comment"] = outcome["output"]
    return ret


def module_stream_installed(name):
    """
    dnf module stream ``name`` (``nvidia-driver:580-open``) enabled and its
    default profile installed: the stream locks the driver branch.
    """
    ret = stateret.new(name)
    if __salt__["gpu.module_stream_installed"](name):
        ret["comment"] = f"dnf module stream {name} is installed"
        return ret
    ret["changes"] = {"module_stream": name}
    if __opts__["test"]:
        ret.update(result=None, comment=f"dnf module stream {name} would be installed")
        return ret
    try:
        __salt__["gpu.install_module_stream"](name)
    except WorkstationError as exc:
        ret.update(result=False, changes={}, comment=str(exc))
        return ret
    ret["comment"] = f"dnf module stream {name} installed"
    return ret


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
    loaded = __salt__["gpu.loaded"]()
    loaded_text = f"{loaded['version']} ({loaded['kernel_module'] or 'flavour unknown'})" if loaded["version"] \
        else "no NVIDIA module"
    note = "".join(f"; {line}" for line in notes or [])
    if __opts__["test"]:
        # Before the install runs, the wanted driver stands in for the one it will install.
        pending = __salt__["gpu.reboot_required"](name, flavor) or not ws_gpu.loaded_matches(loaded, branch, version, flavor)
        if not pending:
            ret["comment"] = f"NVIDIA driver {wanted} ({flavor}) is loaded: no reboot needed{note}"
            return ret
        if reboot:
            ret.update(result=None, changes={"reboot": "scheduled in 1 minute"})
        ret["comment"] = (f"A reboot will be needed to load NVIDIA driver {wanted} ({flavor}); loaded now: "
                          f"{loaded_text}" + (" (workstation:gpu:reboot would schedule it)" if reboot else "") + note)
        return ret

    installed = __salt__["gpu.installed_version"](name)
    if not __salt__["gpu.reboot_required"](name, flavor):
        ret["comment"] = f"NVIDIA driver {installed or wanted} ({flavor}) is loaded: no reboot needed{note}"
        return ret
    __salt__["event.send"](ws_gpu.REBOOT_EVENT, {"package": name, "installed": installed, "loaded": loaded,
                                                 "flavor": flavor})
    ret["comment"] = (f"REBOOT REQUIRED: NVIDIA driver {installed} ({flavor}) is installed, loaded now: {loaded_text}; "
                      f"event {ws_gpu.REBOOT_EVENT} sent")
    if reboot:
        __salt__["system.reboot"](at_time=1)
        ret["changes"] = {"reboot": "scheduled in 1 minute"}
        ret["comment"] += "; reboot scheduled in 1 minute (workstation:gpu:reboot)"
    else:
        ret["comment"] += "; reboot when convenient (workstation:gpu:reboot is false)"
    ret["comment"] += note
    return ret
