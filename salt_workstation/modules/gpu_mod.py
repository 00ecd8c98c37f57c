"""
The GPU and its NVIDIA driver: what the card is, which driver the pillar
wants, which one is loaded, and whether a reboot is pending.

The decisions live in ``salt_workstation.gpu``, the detection in
``salt_workstation.gpu_detect`` (also the ``workstation_gpus`` grain).
"""

import shutil

from salt_workstation import gpu as ws_gpu
from salt_workstation import gpu_detect
from salt_workstation.errors import WorkstationError

__virtualname__ = "gpu"


def __virtual__():
    return __virtualname__


def _config(config=None):
    return config if config is not None else __salt__["workstation.config"](unmask=True)


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
    return gpu_detect.loaded_driver("/")


def installed_version(package):
    """
    The driver version (580.95.05) the OS package ``package`` installed, or None.

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.installed_version nvidia-driver-580-open
    """
    return ws_gpu.upstream_version(__salt__["pkg.version"](package))


def formula_data(config=None):
    """
    The states ``workstation.gpu`` renders for this minion's grains and pillar,
    and the plan they come from.

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.formula_data
    """
    # The loaded driver as the grain saw it at minion start (after the last reboot): tests and
    # image builds can declare it through grains.
    return ws_gpu.formula_data(_config(config), __grains__)


def status(config=None):
    """
    The NVIDIA cards, the driver the pillar wants, the one installed and the one
    loaded, and whether a reboot is pending (``reboot_required``).

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.status
    """
    plan = ws_gpu.decide(_config(config), __grains__)
    report = {
        "cards": plan["cards"],
        "managed": plan["manage"],
        "comment": plan["comment"],
        "errors": plan["errors"],
        "secure_boot": __grains__.get("workstation_secure_boot"),
        "loaded": loaded(),
        "installed": None,
        "wanted": None,
        "reboot_required": False,
    }
    if plan["manage"]:
        report["wanted"] = {key: plan[key] for key in ("branch", "version", "flavor", "source", "driver_packages")}
        report["installed"] = installed_version(plan["version_package"])
        report["reboot_required"] = reboot_required(plan["version_package"], plan["flavor"])
    return report


def reboot_required(package, flavor=None):
    """
    True when the driver that OS package ``package`` installed is not the one
    loaded (a new driver waits for a reboot), False when they match or nothing
    is installed.

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.reboot_required nvidia-driver-580-open flavor=open
    """
    installed = installed_version(package)
    if not installed:
        return False
    now = loaded()
    if now["version"] != installed:
        return True
    return bool(flavor and now["kernel_module"] and now["kernel_module"] != flavor)


def blacklist(path, content, test=False):
    """
    Write the nouveau blacklist ``content`` to ``path`` (atomically, mode 0644)
    when it differs. Returns ``{"changed": bool}``, or ``{"error": ...}`` when it cannot
    be written (a folder there, a full disk); ``test=True`` writes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.blacklist /etc/modprobe.d/workstation-nouveau.conf "blacklist nouveau"
    """
    if not ws_gpu.file_differs(path, content):
        return {"changed": False}
    if not test:
        try:
            ws_gpu.write_file(path, content, 0o644)
        except WorkstationError as exc:
            return {"error": str(exc)}
    return {"changed": True}


def rebuild_initramfs(argv):
    """
    Run the initramfs rebuild command ``argv`` (a list, never a shell).
    Returns ``{"ran": bool, "output": ...}`` or ``{"error": ...}``; ``ran`` is
    False when the tool is not installed (then there is no initramfs to rebuild).

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.rebuild_initramfs '[update-initramfs, -u, -k, all]'
    """
    if shutil.which(argv[0]) is None:
        return {"ran": False, "output": f"{argv[0]} is not installed: no initramfs to rebuild"}
    done = __salt__["cmd.run_all"](list(argv), python_shell=False, timeout=900)
    if done["retcode"] != 0:
        return {"error": f"{' '.join(argv)} failed ({done['retcode']}): {(done['stderr'] or done['stdout']).strip()[-2000:]}"}
    return {"ran": True, "output": done["stdout"].strip()[-2000:]}


def module_stream_installed(stream):
    """
    Whether dnf module stream ``stream`` (nvidia-driver:580-open) is enabled
    with a profile installed.

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.module_stream_installed nvidia-driver:580-open
    """
    module, _, wanted = stream.partition(":")
    done = __salt__["cmd.run_all"](["dnf", "-q", "module", "list", "--installed", module], python_shell=False)
    if done["retcode"] != 0:
        return False
    for line in done["stdout"].splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == module and fields[1] == wanted and "[i]" in line:
            return True
    return False


def install_module_stream(stream):
    """
    ``dnf module install -y <stream>``: enables the stream (which locks the
    driver branch) and installs its default profile.

    CLI Example:

    .. code-block:: bash

        salt '*' gpu.install_module_stream nvidia-driver:580-open
    """
    done = __salt__["cmd.run_all"](["dnf", "-y", "module", "install", stream], python_shell=False, timeout=3600)
    if done["retcode"] != 0:
        raise WorkstationError(f"dnf module install {stream} failed: {(done['stderr'] or done['stdout']).strip()[-2000:]}")
    return True
