"""Image recipes from the fleet's own pillar: which few images to bake so that most machines boot with
nothing to download.

Every machine needs the app versions its productions name (`pillar.wanted_versions`).
Machines that need the same versions form a group. An image baked with a group's
versions covers every machine whose needs it holds: that machine's first boot
installs nothing. `propose` picks, greedily, the images that cover the most
machines not covered yet, and says for each the share of the fleet it covers
and the bytes its machines would otherwise download at boot (the catalog's
`size` of each version; versions without one are listed as unsized).
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from salt_workstation import config as ws_config
from salt_workstation import pillar, safefs
from salt_workstation.errors import WorkstationError

# What a bake pillar carries over from the machines' pillar besides the recipe's catalog and productions.
CARRIED_KEYS = ("install_root", "depot", "repositories", "limits", "verify")
PRODUCTION_SECTIONS = ("apps", "plugins")  # what is installed; env, mounts and launchers are boot's


@dataclass(frozen=True)
class Machine:
    id: str
    needs: frozenset  # of (app, version)
    productions: tuple
    config: dict  # the merged workstation config
    sizes: dict  # (app, version) -> unpacked bytes, or None when the catalog gives none


def machine_of(minion: str, minion_pillar) -> Machine | str:
    """One minion's needs from its pillar; a string saying why not when it has nothing to bake."""
    raw = (minion_pillar or {}).get(pillar.ROOT) if isinstance(minion_pillar, dict) else None
    if not isinstance(raw, dict):
        return "no workstation pillar"
    merged = ws_config.load(raw)
    wanted = [w for w in pillar.wanted_versions(merged) if isinstance(w.spec, dict)]
    if not wanted:
        return "its productions name no app version of the catalog"
    sizes = {}
    for w in wanted:
        size = w.spec.get("size")
        sizes[(w.app, w.version)] = size if isinstance(size, int) and size > 0 else None
    return Machine(
        minion,
        frozenset(sizes),
        tuple(sorted(map(str, merged.get("productions") or {}))),
        merged,
        sizes,
    )


def _apps(needs) -> dict:
    grouped: dict = {}
    for app, version in sorted(needs):
        grouped.setdefault(app, []).append(version)
    return grouped


def groups(machines: list[Machine]) -> list[dict]:
    """Machines grouped by the app versions they need, largest group first."""
    by_needs: dict = {}
    for machine in machines:
        by_needs.setdefault(machine.needs, []).append(machine)
    ordered = sorted(by_needs.items(), key=lambda item: (-len(item[1]), sorted(item[0])))
    return [
        {
            "apps": _apps(needs),
            "productions": sorted({p for m in members for p in m.productions}),
            "machines": sorted(m.id for m in members),
        }
        for needs, members in ordered
    ]


def propose(machines: list[Machine], images: int = 3) -> dict:
    """At most `images` recipes, each the needs of one group, picked by how many machines not yet
    covered it covers (ties: fewer versions to bake). A machine is covered by the first recipe
    that holds every version it needs."""
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise WorkstationError(
            f"images must be a whole number of images to bake (1 or more), got {images!r}"
        )
    candidates = sorted({m.needs for m in machines}, key=sorted)
    left = list(machines)
    recipes = []
    while left and len(recipes) < images:
        best = max(
            candidates,
            key=lambda needs: (sum(1 for m in left if m.needs <= needs), -len(needs)),
        )
        covered = [m for m in left if m.needs <= best]
        left = [m for m in left if not m.needs <= best]
        definer = next(m for m in machines if m.needs == best)
        recipes.append(_recipe(len(recipes) + 1, best, definer, covered, len(machines)))
    total = len(machines)
    return {
        "machines": total,
        "groups": groups(machines),
        "recipes": recipes,
        "covered": total - len(left),
        "covered_share": round((total - len(left)) / total, 3) if total else 0.0,
        "uncovered": sorted(m.id for m in left),
    }


def _recipe(number: int, needs, definer: Machine, covered: list[Machine], total: int) -> dict:
    unsized = sorted(
        {f"{a} {v}" for m in covered for (a, v), size in m.sizes.items() if size is None}
    )
    return {
        "name": f"recipe-{number}",
        "apps": _apps(needs),
        "productions": list(definer.productions),
        "machines": sorted(m.id for m in covered),
        "share": round(len(covered) / total, 3),
        # What the covered machines' first boots would download without this image.
        "saved_bytes": sum(size or 0 for m in covered for size in m.sizes.values()),
        "unsized": unsized,
        "pillar": bake_pillar(needs, definer.config),
    }


def bake_pillar(needs, merged: dict) -> dict:
    """The pillar a Packer bake of this recipe applies: phase bake, the recipe's catalog entries, the
    defining machine's productions (their apps and plugins), and where to install from."""
    catalog = {}
    for app, version in sorted(needs):
        entry = pillar.catalog_entry(merged.get("catalog"), app, version)
        catalog.setdefault(app, {"versions": {}})["versions"][version] = entry
    productions = {}
    for name, production in sorted((merged.get("productions") or {}).items()):
        kept = {
            section: {
                app: str(version)
                for app, version in (production.get(section) or {}).items()
                if (str(app), str(version)) in needs
            }
            for section in PRODUCTION_SECTIONS
            if isinstance(production, dict) and production.get(section)
        }
        if any(kept.values()):
            productions[str(name)] = kept
    carried = {key: merged[key] for key in CARRIED_KEYS if key in merged}
    return {
        pillar.ROOT: {**carried, "phase": "bake", "catalog": catalog, "productions": productions}
    }


def from_pillars(pillars: dict, images: int = 3) -> dict:
    """Recipes for the fleet whose pillars (minion id -> pillar) are given; minions with nothing to
    bake are listed under `skipped` with the reason."""
    machines, skipped = [], {}
    for minion in sorted(pillars):
        found = machine_of(minion, pillars[minion])
        if isinstance(found, str):
            skipped[minion] = found
        else:
            machines.append(found)
    return {**propose(machines, images), "skipped": skipped}


def write_pillars(directory: str, proposal: dict) -> list[str]:
    """One bake pillar file per recipe, `<directory>/<recipe name>.sls`; returns the paths written."""
    written = []
    for recipe in proposal["recipes"]:
        path = f"{directory.rstrip('/')}/{recipe['name']}.sls"
        text = (
            f"# {recipe['name']}: covers {len(recipe['machines'])} machine(s), {recipe['share']:.0%} "
            "of the fleet (salt-run workstation.recipes)\n"
            + yaml.safe_dump(recipe["pillar"], sort_keys=True, default_flow_style=False)
        )
        try:
            safefs.write_file(path, text.encode("utf-8"), 0o644)
        except OSError as exc:
            raise safefs.disk_error(exc, directory) from None
        written.append(path)
    return written


def _size(count: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def render_table(proposal: dict) -> str:
    lines = [
        f"{proposal['machines']} machine(s) in {len(proposal['groups'])} group(s); "
        f"{len(proposal['recipes'])} image(s) cover {proposal['covered']} "
        f"({proposal['covered_share']:.0%})",
        "",
        f"{'recipe':<10} {'share':>6} {'machines':>8} {'saved':>10}  apps",
    ]
    for recipe in proposal["recipes"]:
        apps = ", ".join(f"{a} {' '.join(vs)}" for a, vs in recipe["apps"].items())
        lines.append(
            f"{recipe['name']:<10} {recipe['share']:>6.0%} {len(recipe['machines']):>8} "
            f"{_size(recipe['saved_bytes']):>10}  {apps}"
        )
        if recipe["unsized"]:
            lines.append(f"{'':<37}  no catalog size: {', '.join(recipe['unsized'])}")
    if proposal["uncovered"]:
        lines += ["", f"not covered: {', '.join(proposal['uncovered'])}"]
    if proposal.get("skipped"):
        lines += [""] + [f"skipped {m}: {why}" for m, why in sorted(proposal["skipped"].items())]
    if proposal.get("written"):
        lines += [""] + [f"wrote {path}" for path in proposal["written"]]
    return "\n".join(lines)
