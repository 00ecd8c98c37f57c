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
    print("\nRe-run `make demo`: the apply finds everything installed and changes nothing.")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
