"""Stand-ins for Debian 12's NVIDIA driver packages (workstation.gpu, source distro, branch 535).

They carry the real names and version, install plain files (no kernel module,
nothing under /proc), and an `update-initramfs` that only logs each run, so
the system test can count the initramfs rebuilds.
"""

from tests.system.aptrepo import StandIn, unit_file

DRIVER_VERSION = "535.247.01-1~deb12u1"
KERNEL_RELEASE = (
    "6.1.0-28-amd64"  # the grain the system test declares: the chroot runs the host's kernel
)
NEXT_KERNEL = "6.1.0-29-amd64"  # installed beside it by a kernel update, not running yet
INITRAMFS_LOG = "/var/log/update-initramfs-standin.log"

STAND_INS = (
    StandIn(
        "nvidia-driver",
        DRIVER_VERSION,
        {"/usr/share/nvidia-standin/driver-version": (b"535.247.01\n", 0o644)},
        "Stand-in for Debian's NVIDIA driver metapackage (system tests)",
        {
            "Depends": f"nvidia-kernel-dkms (= {DRIVER_VERSION}) | nvidia-open-kernel-dkms (= {DRIVER_VERSION})"
        },
    ),
    StandIn(
        "nvidia-kernel-dkms",
        DRIVER_VERSION,
        {
            "/usr/src/nvidia-standin-535.247.01/dkms.conf": (
                b'PACKAGE_NAME="nvidia-standin"\n',
                0o644,
            )
        },
        "Stand-in for the proprietary NVIDIA kernel module, DKMS source (system tests)",
    ),
    StandIn(
        "nvidia-open-kernel-dkms",
        DRIVER_VERSION,
        {
            "/usr/src/nvidia-open-standin-535.247.01/dkms.conf": (
                b'PACKAGE_NAME="nvidia-open-standin"\n',
                0o644,
            )
        },
        "Stand-in for the open NVIDIA kernel module, DKMS source (system tests)",
    ),
    StandIn(
        "nvidia-persistenced",
        "535.171.04-1~deb12u1",
        {
            "/usr/bin/nvidia-persistenced": (b"#!/bin/sh\nexec sleep infinity\n", 0o755),
            "/lib/systemd/system/nvidia-persistenced.service": (
                unit_file("NVIDIA Persistence Daemon (stand-in)", "/usr/bin/nvidia-persistenced"),
                0o644,
            ),
        },
        "Stand-in for the NVIDIA persistence daemon (system tests)",
    ),
    StandIn(
        f"linux-headers-{KERNEL_RELEASE}",
        "6.1.119-1",
        {f"/usr/src/linux-headers-{KERNEL_RELEASE}/Makefile": (b"# stand-in\n", 0o644)},
        "Stand-in for the kernel headers DKMS builds against (system tests)",
    ),
    StandIn(
        f"linux-headers-{NEXT_KERNEL}",
        "6.1.123-1",
        {f"/usr/src/linux-headers-{NEXT_KERNEL}/Makefile": (b"# stand-in\n", 0o644)},
        "Stand-in for the next kernel's headers (system tests)",
    ),
    StandIn(
        "dkms",
        "3.0.10-8+deb12u1",
        {"/usr/sbin/dkms": (b'#!/bin/sh\necho "dkms stand-in $*"\n', 0o755)},
        "Stand-in for DKMS, which a runfile install registers its module with (system tests)",
    ),
    StandIn(
        "initramfs-tools",
        "0.142+deb12u1",
        {
            "/usr/sbin/update-initramfs": (
                f'#!/bin/sh\necho "update-initramfs $*" >> {INITRAMFS_LOG}\n'.encode(),
                0o755,
            )
        },
        "Stand-in for initramfs-tools, which a real machine has with its kernel: logs each rebuild (system tests)",
    ),
)


def runfile_script(version: str, bin_dir: str, modules_dir: str, log: str) -> bytes:
    """A stand-in for NVIDIA-Linux-x86_64-<version>.run: it logs its argv, leaves an nvidia-installer
    in bin_dir that reports the version (and, with --uninstall, logs and removes itself and the
    modules), and puts an nvidia.ko where DKMS would build one, for every kernel in modules_dir."""
    return f"""#!/bin/sh
# Stand-in for NVIDIA's runfile {version} (salt-workstation tests): no driver, only its traces.
set -e
echo "install {version} $*" >> {log}
mkdir -p {bin_dir}
cat > {bin_dir}/nvidia-installer <<'INSTALLER'
#!/bin/sh
case "$1" in
  --version) echo "nvidia-installer:  version {version}  (stand-in)" ;;
  --uninstall)
    echo "uninstall {version} $*" >> {log}
    rm -f {modules_dir}/*/updates/dkms/nvidia.ko {bin_dir}/nvidia-installer ;;
  *) exit 2 ;;
esac
INSTALLER
chmod 755 {bin_dir}/nvidia-installer
for kernel in {modules_dir}/*/; do
  [ -f "$kernel/modules.dep" ] || continue
  mkdir -p "$kernel/updates/dkms" && echo "{version}" > "$kernel/updates/dkms/nvidia.ko"
done
""".encode()
