"""The example catalog (pillar_examples/) with a real depot built for it: same paths, real hashes.

Vendor installers are stood in for by small sh scripts that take the real
command lines (SideFX's houdini.install, Foundry's .run) and copy a payload.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from tests.support import archives

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "pillar_examples"

HOUDINI_INSTALL = """#!/bin/sh
# Stand-in for SideFX's houdini.install: honours --make-dir and --accept-EULA.
set -e
dest=""; eula=""
while [ $# -gt 0 ]; do
  case "$1" in
    --make-dir) dest="$2"; shift 2 ;;
    --accept-EULA) eula="$2"; shift 2 ;;
    *) shift ;;
  esac
done
[ -n "$eula" ] || { echo "EULA not accepted" >&2; exit 3; }
[ -n "$dest" ] || { echo "no --make-dir" >&2; exit 2; }
cp -R payload/. "$dest"/
echo "installed into $dest"
"""

NUKE_RUN = """#!/bin/sh
# Stand-in for Foundry's Nuke .run: needs --accept-foundry-eula and --prefix=.
set -e
prefix=""; accepted=""
for arg in "$@"; do
  case "$arg" in
    --prefix=*) prefix="${arg#--prefix=}" ;;
    --accept-foundry-eula) accepted=1 ;;
  esac
done
[ -n "$accepted" ] || { echo "EULA not accepted" >&2; exit 3; }
cp -R payload/. "$prefix"/
"""


def example_catalog() -> dict:
    with open(EXAMPLES / "workstation" / "catalog.sls", encoding="utf-8") as handle:
        return yaml.safe_load(handle)["workstation"]["catalog"]


def example_productions() -> dict:
    productions = {}
    for name in ("nightfall", "harbor"):
        with open(EXAMPLES / "workstation" / f"{name}.sls", encoding="utf-8") as handle:
            productions.update(yaml.safe_load(handle)["workstation"]["productions"])
    return productions


def _launcher_files(app: str, version: str, launchers: dict) -> dict:
    files = {
        "scripts/startup.py": (f"print('{app} {version}')\n".encode(), 0o644),
        "lib/core.so": (f"{app}-{version}-".encode() * 512, 0o644),
    }
    for command, target in (launchers or {}).items():
        files[target] = (f'#!/bin/sh\necho "{command} {version} $*"\n'.encode(), 0o755)
    return files


def _payload(files: dict) -> dict:
    return {f"payload/{name}": content for name, content in files.items()}


def build_source(path: Path, app: str, version: str, spec: dict) -> None:
    """Write the depot file a catalog entry names, shaped like the vendor's."""
    files = _launcher_files(app, version, spec.get("launchers"))
    top = path.name.split(".tar")[0].removesuffix(".tgz").removesuffix(".zip")
    if app == "ocio":
        files = {f"studio-config-v{version}/config.ocio": (b"ocio_profile_version: 2.4\n", 0o644)}
    if spec.get("kind") == "installer":
        script = spec["installer"]["command"][0].removeprefix("./")
        body = HOUDINI_INSTALL if app == "houdini" else NUKE_RUN
        files = {script: (body.encode(), 0o755), **_payload(files)}
        if not spec.get("strip_components"):
            top = None
    if str(path).endswith(".zip"):
        archives.write_zip(path, files, top=top)
    elif str(path).endswith(".tgz"):
        archives.write_tar(path.with_suffix(".tar.gz"), files, top=top).rename(path)
    else:
        archives.write_tar(path, files, top=top)


def build_depot(root: Path) -> dict:
    """Build every example catalog source under root; return the catalog with the real hashes."""
    catalog = copy.deepcopy(example_catalog())
    for app, entry in catalog.items():
        for version, spec in entry["versions"].items():
            if spec.get("kind") == "packages":
                continue  # OS packages come from a package repository, not the depot
            target = root / spec["source"]
            build_source(target, app, version, spec)
            spec["hash"] = archives.sha256_of(target)
    return catalog
