"""Print what the demo apply installed, where, for which production, and run one launcher."""

import json
import subprocess
import sys
from pathlib import Path

SALT_CALL = Path(sys.executable).parent / "salt-call"


def main(demo: Path) -> None:
    out = subprocess.run(
        [
            str(SALT_CALL),
            "--local",
            "-c",
            str(demo / "etc"),
            "--out",
            "json",
            "workstation.inventory",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    inventory = json.loads(out.stdout)["local"]
    print("\nInstalled on this demo workstation:")
    print(f"  {'app':<9} {'version':<10} {'productions':<20} {'files':>5}  path")
    for app, versions in sorted(inventory.items()):
        for version, info in sorted(versions.items()):
            productions = ", ".join(info["productions"]) or "-"
            print(f"  {app:<9} {version:<10} {productions:<20} {info['files']:>5}  {info['dest']}")
    blender = demo / "studio" / "apps" / "blender" / "4.2.3" / "blender"
    ran = subprocess.run([str(blender), "--background"], capture_output=True, text=True, check=True)
    print(f"\n$ {blender} --background\n{ran.stdout.strip()}")


def where(demo: Path) -> None:
    """Where the demo keeps its config and what it wrote outside the studio, to edit and re-run."""
    rows = [
        ("minion config", demo / "etc" / "minion"),
        ("pillar", demo / "pillar" / "workstation.sls"),
        ("apps and launchers", demo / "studio"),
        ("studio-launch", demo / "bin" / "studio-launch"),
        ("desktop entries", demo / "share" / "applications"),
        ("menu folders", demo / "share" / "desktop-directories"),
        ("menu fragments", demo / "xdg" / "menus" / "applications-merged"),
        ("minion log", demo / "salt" / "minion.log"),
    ]
    print("\nWhere the demo keeps things (workstation:lookup:os keeps them out of the system):")
    for label, path in rows:
        count = (
            f" ({len(list(path.iterdir()))} files)"
            if path.is_dir() and path != demo / "studio"
            else ""
        )
        print(f"  {label:<19} {path}{count}")
    print(
        "\nEdit the pillar, then re-run `make demo`, or apply alone:\n"
        f"  .venv/bin/salt-call --local -c {demo / 'etc'} state.apply workstation\n"
        "A second apply with nothing edited finds everything in place and changes nothing."
    )


if __name__ == "__main__":
    if sys.argv[1] == "--where":
        where(Path(sys.argv[2]).resolve())
    else:
        main(Path(sys.argv[1]).resolve())
