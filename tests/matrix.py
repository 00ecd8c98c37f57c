#!/usr/bin/env python3
"""The Salt version matrix: the tiers that touch Salt's interfaces, against each older Salt line.

    python3 tests/matrix.py [--lines 3006,3007] [--tiers unit,functional,integration]
    python3 tests/matrix.py --build      # only build the lines' venvs, side by side

`make test` builds the venvs while the main suite runs, then runs the lines one after
the other, each under pytest-xdist (files spread over TEST_WORKERS processes, as in the
main suite). Each line gets a venv of its own (.venv-salt<line>, rebuilt when setup.cfg,
constraints.txt or the pin changes) on the Python that line supports, found on PATH or
under pyenv. A line whose Python is not on this machine is reported as not covered,
never silently skipped. The table at the end says what ran, how long it took, and what
was covered.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# line: (Python, pin, tiers, why a tier is left out). 3006 is the LTS most studios' onedir
# packages carry; 3006.30 and 3008.5 need a certifi newer than the package index serves.
TIERS = {"unit": "tests/unit", "functional": "tests/functional", "integration": "tests/integration"}
LINES = {
    "3006": ("3.10", "salt==3006.29", tuple(TIERS), ""),
    # The unit tier imports no Salt, and 3007 runs on the main suite's Python: it would repeat it.
    "3007": (
        "3.11",
        "salt==3007.16",
        ("functional", "integration"),
        "unit left out: it imports no Salt and runs on this Python in the main suite",
    ),
}
WORKERS = os.environ.get("TEST_WORKERS", "3")


def find_python(version: str) -> str | None:
    """An interpreter for `version`: on PATH if it runs, else the newest pyenv build of it."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates += sorted(
        glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True
    )
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in filter(None, candidates):
        done = subprocess.run(
            [candidate, "-c", "import sys, venv; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return candidate
    return None


def constraints_for(pin: str) -> str:
    """constraints.txt with this line's Salt pin in place of the main one."""
    lines = (REPO / "constraints.txt").read_text().splitlines()
    return "\n".join([line for line in lines if not line.startswith("salt==")] + [pin]) + "\n"


def ensure_venv(line: str, python: str, pin: str) -> Path:
    venv = REPO / f".venv-salt{line}"
    constraints = constraints_for(pin)
    key = hashlib.sha256(
        b"".join(
            [
                (REPO / "setup.cfg").read_bytes(),
                (REPO / "pyproject.toml").read_bytes(),
                constraints.encode(),
                python.encode(),
            ]
        )
    ).hexdigest()
    stamp = venv / ".installed"
    if stamp.exists() and stamp.read_text() == key:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    constraints_file = venv / "constraints.txt"
    constraints_file.write_text(constraints)
    subprocess.run(
        [*pip, "-c", str(constraints_file), "-e", f"{REPO}[tests]"], check=True, cwd=REPO
    )
    stamp.write_text(key)
    return venv


def build(lines: list[str]) -> dict[str, tuple[str | None, Path | str]]:
    """Each line's Python and venv (or why there is none), the venvs built side by side:
    pip mostly waits on the package index and the disk."""

    def one(line: str) -> tuple[str | None, Path | str]:
        version, pin = LINES[line][:2]
        python = find_python(version)
        if python is None:
            return None, f"NOT COVERED: no python{version}"
        try:
            return python, ensure_venv(line, python, pin)
        except subprocess.CalledProcessError as exc:
            return python, f"FAILED: the venv could not be built ({exc})"

    with ThreadPoolExecutor(max_workers=len(lines)) as pool:
        return dict(zip(lines, pool.map(one, lines), strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", default=",".join(LINES), help="Salt lines to run (default: all)")
    parser.add_argument("--tiers", help="test tiers to run (default: each line's own, see LINES)")
    parser.add_argument("--build", action="store_true", help="only build the venvs")
    args = parser.parse_args()
    lines = args.lines.split(",")
    started = time.monotonic()
    venvs = build(lines)
    built_s = time.monotonic() - started
    if args.build:
        failures = [f"{line}: {venv}" for line, (_, venv) in venvs.items() if isinstance(venv, str)]
        print("\n".join(failures) or f"matrix venvs ready in {built_s:.0f} s", flush=True)
        return 1 if any("FAILED" in failure for failure in failures) else 0
    rows, failed = [], False
    for line in lines:
        pin, line_tiers, left_out = LINES[line][1:]
        python, venv = venvs[line]
        if isinstance(venv, str):
            rows.append((line, pin, python or "-", venv, "-"))
            failed |= venv.startswith("FAILED")
            continue
        started = time.monotonic()
        salt = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import salt.version; print(salt.version.__version__)",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        tiers = [TIERS[tier] for tier in (args.tiers.split(",") if args.tiers else line_tiers)]
        print(f"\n==> Salt {salt} on {python}: {' '.join(tiers)}", flush=True)
        done = subprocess.run(
            [
                str(venv / "bin" / "python"),
                *("-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=10"),
                *("-n", WORKERS, "--dist", "loadfile"),
                *tiers,
            ],
            cwd=REPO,
            check=False,
        )
        outcome = "passed" if done.returncode == 0 else f"FAILED (pytest exit {done.returncode})"
        outcome += f" ({', '.join(tier.split('/')[1] for tier in tiers)})" + (
            f"; {left_out}" if left_out and not args.tiers else ""
        )
        failed |= done.returncode != 0
        rows.append((line, f"salt {salt}", python, outcome, f"{time.monotonic() - started:.0f} s"))
    print(
        f"\nSalt version matrix ({len(lines)} venvs ready in {built_s:.0f} s;"
        " the main venv ran every tier on Salt 3008):"
    )
    print(f"{'line':6} {'salt':14} {'python':48} {'wall':>6}  result")
    for row in rows:
        print(f"{row[0]:6} {row[1]:14} {row[2]:48} {row[4]:>6}  {row[3]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
