"""Lay out the demo: a depot of stand-in app archives, the example pillar pointed at it, a masterless minion.

Usage: python demo/build.py DEMO_DIR   (make demo runs this)
"""

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.catalog import build_depot, example_productions  # noqa: E402


def main(demo: Path) -> None:
    catalog = build_depot(demo / "depot")
    pillar_dir = demo / "pillar"
    pillar_dir.mkdir(parents=True, exist_ok=True)
    (pillar_dir / "top.sls").write_text("base:\n  '*':\n    - workstation\n")
    workstation = {
        "install_root": str(demo / "studio"),
        "depot": f"file://{demo / 'depot'}",
        "retain": 1,
        "catalog": catalog,
        "productions": example_productions(),
        # studio-launch, desktop entries, menus and fstab land in the demo folder, not in the system;
        # so would every other system file (docs/pillar.md, "System paths"), and no storage client
        # is installed
        "lookup": {
            "os": {
                "bin_dir": str(demo / "bin"),
                "xdg_data_dir": str(demo / "share"),
                "xdg_config_dir": str(demo / "xdg"),
                "fstab": str(demo / "fstab"),
                **{
                    key: str(demo / "etc" / key)
                    for key in (
                        "profile_dir",
                        "environment_dir",
                        "dcv_dir",
                        "pcoip_dir",
                        "tigervnc_dir",
                        "modprobe_dir",
                        "keyring_dir",
                        "sources_dir",
                    )
                },
                "mount_packages": {},
            }
        },
    }
    (pillar_dir / "workstation.sls").write_text(
        yaml.safe_dump({"workstation": workstation}, sort_keys=False)
    )
    (demo / "empty").mkdir(exist_ok=True)
    (demo / "etc").mkdir(exist_ok=True)
    minion = {
        "id": "demo-workstation",
        "file_client": "local",
        "root_dir": str(demo / "salt"),
        "log_file": str(demo / "salt" / "minion.log"),
        "fileserver_backend": ["roots", "workstation"],
        "file_roots": {"base": [str(demo / "empty")]},
        "pillar_roots": {"base": [str(pillar_dir)]},
    }
    (demo / "etc" / "minion").write_text(yaml.safe_dump(minion, sort_keys=False))
    print(
        f"demo depot: {demo / 'depot'} ({sum(len(e['versions']) for e in catalog.values())} app versions)"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
