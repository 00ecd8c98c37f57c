#!/usr/bin/env python3
"""The Salt version matrix: the unit, functional and integration tiers against each older Salt line.

    python3 tests/matrix.py [--lines 3006,3007] [--tiers unit,functional,integration]

`make test` runs it after the full suite on the main venv (Salt 3008). Each line gets
a venv of its own (.venv-salt<line>, rebuilt when setup.cfg, constraints.txt or the pin
changes) on the Python that line supports, found on PATH or under pyenv. A line whose
Python is not on this machine is reported as not covered, never silently skipped. The
table at the end says what ran, how long it took, and what was covered.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# line: (Python, pin, tiers, why a tier is left out). 3006 is the LTS most studios' onedir
# packages carry; 3006.30 and 3008.5 need a certifi newer than the package index serves.
TIERS = {"unit": "tests/unit", "functional": "tests/functional", "integration": "tests/integration"}
LINES = {
    "3006": ("3.10", "salt==3006.29", tuple(TIERS), ""),
    "3007": ("3.11", "salt==3007.16", tuple(TIERS), ""),
}


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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", default=",".join(LINES), help="Salt lines to run (default: all)")
    parser.add_argument("--tiers", help="test tiers to run (default: each line's own, see LINES)")
    args = parser.parse_args()
    rows, failed = [], False
    for line in args.lines.split(","):
        version, pin, line_tiers, left_out = LINES[line]
        python = find_python(version)
        if python is None:
            rows.append((line, pin, f"python{version}", "NOT COVERED: no Python", "-"))
            continue
        started = time.monotonic()
        try:
            venv = ensure_venv(line, python, pin)
        except subprocess.CalledProcessError as exc:
            rows.append((line, pin, python, f"FAILED: the venv could not be built ({exc})", "-"))
            failed = True
            continue
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
                *("-m", "pytest", "-q", "-p", "no:cacheprovider"),
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
    print("\nSalt version matrix (the main venv ran every tier on Salt 3008):")
    print(f"{'line':6} {'salt':14} {'python':48} {'wall':>6}  result")
    for row in rows:
        print(f"{row[0]:6} {row[1]:14} {row[2]:48} {row[4]:>6}  {row[3]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
