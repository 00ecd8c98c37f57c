#!/usr/bin/env python3
"""The pillar at studio size: validate, render and a converged apply against the example pillar.

    .venv/bin/python benchmarks/pillar_scale.py              # 5 alternating rounds
    .venv/bin/python benchmarks/pillar_scale.py --rounds 3

Three masterless minions share one loopback depot, each with its own pillar:

- ``example``: pillar_examples/ (its catalog, nightfall and harbor provisioned);
- ``studio``: the example catalog plus generated apps up to 500 catalog versions, 60
  productions defined with 200 launchers, and the same two productions (nightfall and harbor)
  provisioned on this workstation: what a studio's artist machine renders;
- ``studio-all``: the same pillar with all 60 productions provisioned (a lead's machine,
  pillar_examples/top.sls's ``ws-lead-*``).

In ``studio`` the 58 other productions' pillar files sit in pillar_roots, unassigned: a top file
gives each machine its productions, so an artist's machine renders the whole catalog but only its
own productions.

Each round runs, in alternating order, `salt-call --local` with ``workstation.validate``,
``state.show_sls workstation`` and ``state.apply workstation`` (converged: installed before
the rounds, checked to change nothing) for each pillar. Figures: median wall and CPU seconds,
min-max, and the ratio to the example pillar. Results go to benchmarks/.work/pillar-scale.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import run as bench  # noqa: E402  (benchmarks/run.py: timing, statistics, the depot process)

from tests.support import archives  # noqa: E402
from tests.support.catalog import build_depot, example_productions  # noqa: E402
from tests.support.masterless import minion_config, salt_call_argv, system_paths_under  # noqa: E402

CATALOG_VERSIONS = 500
PRODUCTIONS = 60
LAUNCHERS = 200
GENERATED_VERSIONS_PER_APP = 5
TARGET = 1.5  # studio converged apply / example converged apply


def generated_catalog(depot_root: Path, existing: int) -> dict:
    """Apps `tool-NNN`, five versions each, until the catalog holds CATALOG_VERSIONS versions.
    Each version is a real (tiny) archive in the depot with one launcher."""
    catalog, count, index = {}, existing, 0
    while count < CATALOG_VERSIONS:
        app = f"tool-{index:03d}"
        versions = {}
        for minor in range(GENERATED_VERSIONS_PER_APP):
            if count >= CATALOG_VERSIONS:
                break
            version = f"1.{minor}"
            source = f"{app}/{app}-{version}.tar.gz"
            path = depot_root / source
            if not path.exists():
                archives.write_tar(
                    path,
                    {f"bin/{app}": (f"#!/bin/sh\necho {app} {version}\n".encode(), 0o755)},
                    top=f"{app}-{version}",
                )
            versions[version] = {
                "source": source,
                "hash": archives.sha256_of(path),
                "strip_components": 1,
                "launchers": {app: f"bin/{app}"},
                "env": {f"{app.upper().replace('-', '_')}_ROOT": "{dest}"},
            }
            count += 1
        catalog[app] = {"versions": versions}
        index += 1
    return catalog


def generated_productions(catalog: dict) -> dict:
    """60 productions, 200 launchers in all (one per app with a launcher), seeded."""
    rng = random.Random(60)
    apps = sorted(catalog)
    productions = {}
    left = LAUNCHERS
    for number in range(PRODUCTIONS):
        share = left // (PRODUCTIONS - number)
        chosen = rng.sample(apps, share)
        productions[f"show-{number:02d}"] = {
            "env": {"SHOW": f"show-{number:02d}", "JOB": f"/mnt/show-{number:02d}/projects"},
            "apps": {app: rng.choice(sorted(catalog[app]["versions"])) for app in chosen},
        }
        left -= share
    return productions


def write_pillar(root: Path, workstation: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "workstation.sls").write_text(json.dumps({"workstation": workstation}))  # JSON is YAML
    (root / "top.sls").write_text(json.dumps({"base": {"*": ["workstation"]}}))
    return root


def prepare(work: Path) -> dict:
    """The depot, the three pillars and minion configs; returns {name: config dir}."""
    depot_root = work / "depot"
    example_catalog = build_depot(depot_root)
    generated = generated_catalog(
        depot_root, sum(len(e["versions"]) for e in example_catalog.values())
    )
    studio_catalog = {**copy.deepcopy(example_catalog), **generated}
    every_production = generated_productions(generated)
    return {
        "depot_root": depot_root,
        "catalogs": {"example": example_catalog, "studio": studio_catalog},
        "productions": {"example": example_productions(), "all": every_production},
    }


def configure(work: Path, scratch: Path, depot_url: str, data: dict) -> dict:
    configs = {}
    variants = {
        "example": (data["catalogs"]["example"], data["productions"]["example"]),
        # The other 60 productions sit in the pillar tree beside this minion's; the top file
        # gives this minion nightfall and harbor only (the pillar_examples/top.sls shape).
        "studio": (data["catalogs"]["studio"], data["productions"]["example"]),
        "studio-all": (
            data["catalogs"]["studio"],
            {**data["productions"]["example"], **data["productions"]["all"]},
        ),
    }
    for name, (catalog, productions) in variants.items():
        base = scratch / name
        workstation = {
            "install_root": str(base / "studio"),
            "depot": depot_url,
            "retain": 1,
            "catalog": catalog,
            "productions": productions,
            "lookup": system_paths_under(base / "system"),
        }
        pillar = write_pillar(work / "pillars" / name, workstation)
        if name == "studio":  # the 60 productions' files are in pillar_roots, unassigned
            for show, entry in data["productions"]["all"].items():
                (pillar / f"{show}.sls").write_text(
                    json.dumps({"workstation": {"productions": {show: entry}}})
                )
        configs[name] = minion_config(work / "minions" / name, f"bench-{name}", pillar)
        # The minion's cache and its installs go on the scratch filesystem.
        conf = configs[name] / "minion"
        text = conf.read_text().replace(str(configs[name] / "root"), str(base / "root"))
        conf.write_text(text)
    return configs


def converge(config: Path, name: str) -> None:
    for attempt in ("install", "check"):
        out = subprocess.run(
            salt_call_argv(config, "state.apply", "workstation"),
            capture_output=True,
            text=True,
            timeout=1800,
        )
        states = json.loads(out.stdout or "{}").get("local", {})
        if not isinstance(states, dict) or not states:
            raise RuntimeError(f"{name}: state.apply returned no states: {out.stdout[-2000:]}")
        failed = {v["__id__"]: v["comment"] for v in states.values() if v["result"] is False}
        changed = [v["__id__"] for v in states.values() if v["changes"]]
        if failed:
            raise RuntimeError(f"{name}: {len(failed)} states failed: {list(failed.items())[:3]}")
        bench.log(f"{name}: {attempt} apply: {len(states)} states, {len(changed)} changed")
        if attempt == "check" and changed:
            raise RuntimeError(f"{name}: not converged after the first apply: {changed[:5]}")


CALLS = {
    "workstation.validate": ("workstation.validate",),
    "state.show_sls workstation": ("state.show_sls", "workstation"),
    "state.apply workstation (converged)": ("state.apply", "workstation"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--timeout-s", type=float, default=600)
    args = parser.parse_args()
    work = HERE / ".work" / "pillar-scale"
    scratch = work / "scratch"
    bench.log("building the depot and the pillars")
    data = prepare(work)
    depot = bench.Depot(data["depot_root"])
    try:
        configs = configure(work, scratch, depot.url, data)
        for name, config in configs.items():
            converge(config, name)
        samples = {f"{call} [{name}]": [] for call in CALLS for name in configs}
        methods = list(samples)
        for index in range(args.rounds):
            for method in bench.order_for(index, methods):
                call, name = method.rsplit(" [", 1)
                argv = salt_call_argv(configs[name.rstrip("]")], *CALLS[call])
                samples[method].append(bench.run_child(argv, timeout=args.timeout_s))
            bench.log(f"round {index + 1}/{args.rounds} done")
    finally:
        depot.close()
    results = {}
    for call in CALLS:
        per_call = {name: samples[f"{call} [{name}]"] for name in configs}
        results[call] = bench.summarize(per_call, "example")
    sizes = {
        name: {
            "catalog_versions": sum(len(e["versions"]) for e in catalog.values()),
        }
        for name, catalog in data["catalogs"].items()
    }
    sizes["productions_generated"] = len(data["productions"]["all"])
    sizes["launchers_generated"] = sum(len(p["apps"]) for p in data["productions"]["all"].values())
    out = {"sizes": sizes, "rounds": args.rounds, "results": results, "target": TARGET}
    (HERE / ".work" / "pillar-scale.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(sizes))
    for call, rows in results.items():
        print(f"\n{call}:")
        for name, row in rows.items():
            print(
                f"  {name:<11} median {row['median_s']:6.2f} s (min {row['min_s']:.2f}, max {row['max_s']:.2f}), "
                f"CPU {row['median_cpu_s']:.2f} s, stall {row['median_cpu_stall_s']:.1f} s, "
                f"x{row['ratio_to_baseline']:.2f} of example (per-round median x{row['median_round_ratio']:.2f})"
            )
    studio = results["state.apply workstation (converged)"]["studio"]["ratio_to_baseline"]
    verdict = "meets" if studio <= TARGET else "MISSES"
    print(
        f"\nstudio converged apply: x{studio:.2f} of the example pillar's: {verdict} the x{TARGET} goal"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
