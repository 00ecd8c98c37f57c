"""`salt-run workstation.recipes` on a real master with real minions of different productions: the
pillar the master holds for each, grouped, the images proposed, the bake pillars written.
(The grouping over a 13-minion fleet is tests/unit/test_recipes.py.)"""

from __future__ import annotations

import pytest
import yaml

from tests.integration.conftest import MASTER_WAKEUP
from tests.support.daemons import start_together, stop_together

HASH = "sha256:" + "cd" * 32
CATALOG = {
    "blender": {"versions": {"4.2.3": {"source": "b.tar.gz", "hash": HASH, "size": 2**30}}},
    "nuke": {"versions": {"15.1v3": {"source": "n.tar.gz", "hash": HASH, "size": 2**29}}},
    "maya": {"versions": {"2025": {"source": "m.tar.gz", "hash": HASH, "size": 2**31}}},
}
MINIONS = {  # minion id -> its productions (each production's apps)
    "ws-recipe-night": {"nightfall": {"blender": "4.2.3"}},
    "ws-recipe-harbor": {"harbor": {"blender": "4.2.3", "nuke": "15.1v3"}},
    "ws-recipe-tide": {"tidewater": {"maya": "2025"}},
}


@pytest.fixture(scope="module")
def recipe_master(salt_factories, tmp_path_factory):
    pillar_root = tmp_path_factory.mktemp("recipe-pillar")
    top = {"base": {}}
    for minion, productions in MINIONS.items():
        sls = minion.replace("-", "_")
        top["base"][minion] = [sls]
        workstation = {
            "depot": "https://depot.studio.test/dcc",
            "catalog": CATALOG,
            "productions": {name: {"apps": apps} for name, apps in productions.items()},
        }
        (pillar_root / f"{sls}.sls").write_text(yaml.safe_dump({"workstation": workstation}))
    (pillar_root / "top.sls").write_text(yaml.safe_dump(top))
    overrides = {
        "pillar_roots": {"base": [str(pillar_root)]},
        "file_roots": {"base": [str(tmp_path_factory.mktemp("recipe-roots"))]},
        "open_mode": True,
        **MASTER_WAKEUP,
    }
    factory = salt_factories.salt_master_daemon("recipe-master", overrides=overrides)
    with factory.started(start_timeout=120):
        minions = [factory.salt_minion_daemon(minion) for minion in MINIONS]
        start_together(minions, workers=3)
        try:
            yield factory
        finally:
            stop_together(minions)


def test_recipes_from_the_masters_pillar_of_every_minion_it_knows(recipe_master, tmp_path):
    run = recipe_master.salt_run_cli(timeout=120)

    proposal = run.run("workstation.recipes", "images=2", "format=json", f"write={tmp_path}").data
    table = run.run("workstation.recipes", "ws-recipe-*", "images=1").stdout

    assert proposal["machines"] == 3 and proposal["skipped"] == {}
    first, second = proposal["recipes"]
    # nightfall's needs are a subset of harbor's: one image covers both machines.
    assert first["apps"] == {"blender": ["4.2.3"], "nuke": ["15.1v3"]}
    assert first["machines"] == ["ws-recipe-harbor", "ws-recipe-night"]
    assert first["share"] == round(2 / 3, 3) and first["saved_bytes"] == 2 * 2**30 + 2**29
    assert second["machines"] == ["ws-recipe-tide"] and second["saved_bytes"] == 2**31
    assert proposal["written"] == [str(tmp_path / "recipe-1.sls"), str(tmp_path / "recipe-2.sls")]
    baked = yaml.safe_load((tmp_path / "recipe-1.sls").read_text())["workstation"]
    assert baked["phase"] == "bake" and baked["productions"] == {
        "harbor": {"apps": {"blender": "4.2.3", "nuke": "15.1v3"}}
    }
    assert "1 image(s) cover 2 (67%)" in table and "not covered: ws-recipe-tide" in table
