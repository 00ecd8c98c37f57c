"""salt-workstation: provision artist workstations with Salt.

The plain-Python core (pillar, depot, unpack, engine, plan) holds the logic; the
loader folders (modules, states, grains, runners, fileserver) are thin Salt
wrappers around it.
"""

from pathlib import Path

__version__ = "0.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent

# Formulas ship inside the package (setup.cfg maps the top-level formulas/ here);
# in a source checkout they sit beside the package.
FORMULA_ROOT = next(
    (
        path
        for path in (PACKAGE_DIR / "formulas", PACKAGE_DIR.parent / "formulas")
        if (path / "workstation").is_dir()
    ),
    PACKAGE_DIR / "formulas",
)
FORMULA_DIR = FORMULA_ROOT / "workstation"
