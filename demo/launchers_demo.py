"""Show one launcher working for two productions: the environment each gets, side by side, then a start.

Usage: python demo/launchers_demo.py DEMO_DIR [APP]   (after the demo apply; APP defaults to houdini)

It runs the launchers the apply wrote, as an artist would, through studio-launch
when the demo put it in DEMO_DIR/bin, else the production's own bin/ folder.
"""

import subprocess
import sys
from pathlib import Path

PLAIN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/home/artist"}


def _launcher(demo: Path, production: str, app: str) -> list[str]:
    studio_launch = demo / "bin" / "studio-launch"
    if studio_launch.is_file():
        return [str(studio_launch), production, app]
    return [str(demo / "studio" / "productions" / production / "bin" / app)]


def _environment(demo: Path, production: str, app: str) -> dict:
    """What the launcher sets: it prints it instead of starting the app when STUDIO_LAUNCH_PRINT_ENV is set."""
    out = subprocess.run(
        _launcher(demo, production, app),
        capture_output=True,
        text=True,
        check=True,
        env={**PLAIN_ENV, "STUDIO_LAUNCH_PRINT_ENV": "1"},
    )
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def main(demo: Path, app: str) -> None:
    productions_dir = demo / "studio" / "productions"
    productions = (
        sorted(p.name for p in productions_dir.iterdir() if (p / "bin" / app).is_file())
        if productions_dir.is_dir()
        else []
    )
    if len(productions) < 2:
        print(
            f"\nlaunchers: fewer than two productions have {app} in {productions_dir}; nothing to compare"
        )
        return
    first, second = productions[:2]
    envs = {name: _environment(demo, name, app) for name in (first, second)}
    names = sorted(set(envs[first]) | set(envs[second]))
    shown = {
        name: {key: value.replace(str(demo), "$DEMO") for key, value in env.items()}
        for name, env in envs.items()
    }
    width = max(len(n) for n in names)
    column = max(len(v) for env in shown.values() for v in env.values())
    print(
        f"\nOne launcher, two productions: `studio-launch --env <production> {app}`  ($DEMO = {demo})\n"
    )
    print(f"  {'variable':<{width}}  {first:<{column}}  {second}")
    for name in names:
        print(
            f"  {name:<{width}}  {shown[first].get(name, '-'):<{column}}  {shown[second].get(name, '-')}"
        )
    for production in (first, second):
        argv = [*_launcher(demo, production, app), "--", "shot 010 v2.hip"]
        ran = subprocess.run(argv, capture_output=True, text=True, check=True, env=PLAIN_ENV)
        shown_argv = " ".join(a if " " not in a else f"'{a}'" for a in argv).replace(
            str(demo), "$DEMO"
        )
        print(f"\n$ {shown_argv}\n{ran.stdout.strip()}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), sys.argv[2] if len(sys.argv) > 2 else "houdini")
