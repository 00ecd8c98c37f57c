"""X on the NVIDIA card read from /proc trees built like the live one, and dcvgldiag's verdict."""

from __future__ import annotations

import os
from pathlib import Path

from salt_workstation import xprobe

XORG_MAPS_NVIDIA = "7f00-7f10 r-xp 0 08:01 42 /usr/lib/xorg/modules/drivers/nvidia_drv.so\n"
XORG_MAPS_MODESETTING = (
    "7f00-7f10 r-xp 0 08:01 43 /usr/lib/xorg/modules/drivers/modesetting_drv.so\n"
)


def process(proc: Path, pid: int, comm: str, argv: list[str], maps="", devices=()) -> None:
    folder = proc / str(pid)
    (folder / "fd").mkdir(parents=True)
    (folder / "comm").write_text(comm + "\n")
    (folder / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
    (folder / "maps").write_text(maps)
    for number, device in enumerate(devices, start=3):
        os.symlink(device, folder / "fd" / str(number))  # dangles here: only the link is read


def test_x_on_the_nvidia_card_by_its_driver_mapped_or_its_device_open(tmp_path):
    process(tmp_path, 1, "systemd", ["/sbin/init"])
    process(
        tmp_path, 812, "Xorg", ["/usr/lib/xorg/Xorg", "vt1", ":0", "-auth", "x"], XORG_MAPS_NVIDIA
    )
    process(
        tmp_path, 990, "Xorg", ["/usr/lib/xorg/Xorg", ":1"], devices=["/dev/nvidia0", "/dev/null"]
    )
    (tmp_path / "self").mkdir()

    found = xprobe.x_on_nvidia(str(tmp_path))

    assert found == {
        "running": True,
        "on_nvidia": True,
        "servers": [
            {"pid": 812, "name": "Xorg", "display": ":0", "nvidia": True},
            {"pid": 990, "name": "Xorg", "display": ":1", "nvidia": True},
        ],
        "reason": None,
    }


def test_x_on_another_driver_says_so_and_what_to_check(tmp_path):
    process(
        tmp_path,
        812,
        "Xorg",
        ["/usr/lib/xorg/Xorg", ":0"],
        XORG_MAPS_MODESETTING,
        ["/dev/nvidiactl"],
    )

    found = xprobe.x_on_nvidia(str(tmp_path))

    assert (found["running"], found["on_nvidia"]) == (True, False)
    assert "X runs (Xorg :0 (pid 812)) but not on the NVIDIA card" in found["reason"]
    assert "BusID" in found["reason"]


def test_no_x_server_is_a_reason_only_where_one_is_expected(tmp_path):
    process(tmp_path, 1, "systemd", ["/sbin/init"])

    expected = xprobe.x_on_nvidia(str(tmp_path))
    not_expected = xprobe.x_on_nvidia(str(tmp_path), expected=False)

    assert expected["running"] is False and "no X server is running" in expected["reason"]
    assert not_expected["reason"] is None
    assert xprobe.x_on_nvidia(str(tmp_path / "absent"))["servers"] == []


def test_dcvgldiag_passes_without_errors_and_names_the_first_error():
    clean = "Running tests: ....... DONE\n\nWARNING (1/1)\n\n  HardDPMS is not false.\n"
    broken = (
        "Running tests: ....... DONE\n\nERROR (1/2)\n\n  The X server is not running on the "
        "NVIDIA GPU.\n  Check the X configuration.\n\nERROR (2/2)\n\n  Another.\n"
    )

    assert xprobe.judge_gldiag(0, clean) == {"passed": True, "reason": None}
    verdict = xprobe.judge_gldiag(0, broken)
    assert verdict["passed"] is False
    assert verdict["reason"].startswith("dcvgldiag: ERROR (1/2): The X server is not running")
    failed = xprobe.judge_gldiag(1, "cannot open display\n")
    assert failed == {"passed": False, "reason": "dcvgldiag exited with 1: cannot open display"}
