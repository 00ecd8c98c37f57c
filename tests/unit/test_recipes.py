"""Image recipes from a fleet of 13 minion pillars: grouping, the images proposed, the bake pillars."""

from __future__ import annotations

import json

import pytest
import yaml

from salt_workstation import config, contract, recipes
from salt_workstation.errors import WorkstationError

HASH = "sha256:" + "ab" * 32


def _version(size=None):
    entry = {"source": "app.tar.gz", "hash": HASH}
    return {**entry, "size": size} if size else entry


CATALOG = {
    "blender": {"versions": {"4.2.3": _version(1000), "4.1.1": _version(900)}},
    "houdini": {"versions": {"20.5.410": _version(3000)}},
    "nuke": {"versions": {"15.1v3": _version(500)}},
    "maya": {"versions": {"2025": _version()}},  # no size: its bytes are unknown
}
PRODUCTIONS = {
    "nightfall": {"blender": "4.2.3", "houdini": "20.5.410"},
    "harbor": {"blender": "4.2.3", "nuke": "15.1v3"},
    "tidewater": {"maya": "2025"},
    "nightfall-legacy": {"blender": "4.1.1", "houdini": "20.5.410"},
}


def _pillar(*productions):
    return {
        "workstation": {
            "install_root": "/opt/studio",
            "depot": "https://depot.studio.test/dcc",
            "catalog": CATALOG,
            "productions": {
                p: {"apps": dict(PRODUCTIONS[p]), "env": {"SHOW": p}} for p in productions
            },
            "licenses": {"foundry": {"type": "rlm", "isv": "foundry", "servers": ["4101@rlm"]}},
        }
    }


FLEET = {
    **{f"ws-night-{n}": _pillar("nightfall") for n in range(1, 6)},
    **{f"ws-harbor-{n}": _pillar("harbor") for n in range(1, 4)},
    **{f"ws-lead-{n}": _pillar("nightfall", "harbor") for n in range(1, 3)},
    "ws-tide-1": _pillar("tidewater"),
    "ws-legacy-1": _pillar("nightfall-legacy"),
    "ws-render-1": {"other": {"not": "a workstation"}},
}


def test_machines_are_grouped_by_the_app_versions_they_need():
    proposal = recipes.from_pillars(FLEET, images=2)

    assert proposal["machines"] == 12 and proposal["skipped"] == {
        "ws-render-1": "no workstation pillar"
    }
    assert [(g["apps"], len(g["machines"])) for g in proposal["groups"]] == [
        ({"blender": ["4.2.3"], "houdini": ["20.5.410"]}, 5),
        ({"blender": ["4.2.3"], "nuke": ["15.1v3"]}, 3),
        ({"blender": ["4.2.3"], "houdini": ["20.5.410"], "nuke": ["15.1v3"]}, 2),
        ({"blender": ["4.1.1"], "houdini": ["20.5.410"]}, 1),
        ({"maya": ["2025"]}, 1),
    ]


def test_the_fewest_images_cover_the_most_machines_with_their_share_and_saved_bytes():
    proposal = recipes.from_pillars(FLEET, images=2)
    first, second = proposal["recipes"]

    # The leads' image holds what nightfall and harbor machines need: it covers 10 of 12.
    assert first["apps"] == {"blender": ["4.2.3"], "houdini": ["20.5.410"], "nuke": ["15.1v3"]}
    assert len(first["machines"]) == 10 and first["share"] == round(10 / 12, 3)
    assert first["saved_bytes"] == 5 * (1000 + 3000) + 3 * (1000 + 500) + 2 * 4500
    assert first["unsized"] == [] and first["productions"] == ["harbor", "nightfall"]
    # Then a one-machine image; of the two, the one with fewer versions to bake.
    assert second["apps"] == {"maya": ["2025"]} and second["machines"] == ["ws-tide-1"]
    assert second["saved_bytes"] == 0 and second["unsized"] == ["maya 2025"]
    assert proposal["covered"] == 11 and proposal["uncovered"] == ["ws-legacy-1"]

    table = recipes.render_table(proposal)
    assert "12 machine(s) in 5 group(s); 2 image(s) cover 11 (92%)" in table
    assert (
        "recipe-1      83%       10   32.7 KiB  blender 4.2.3, houdini 20.5.410, nuke 15.1v3"
        in table
    )
    assert "not covered: ws-legacy-1" in table and "no catalog size: maya 2025" in table
    json.dumps(proposal)  # the JSON output


def test_a_recipe_bake_pillar_is_a_valid_bake_of_exactly_its_versions(tmp_path):
    proposal = recipes.from_pillars(FLEET, images=3)
    written = recipes.write_pillars(str(tmp_path / "bakes"), proposal)

    assert written == [str(tmp_path / "bakes" / f"recipe-{n}.sls") for n in (1, 2, 3)]
    baked = yaml.safe_load((tmp_path / "bakes" / "recipe-1.sls").read_text())["workstation"]
    assert baked["phase"] == "bake" and baked["depot"] == "https://depot.studio.test/dcc"
    assert baked["productions"] == {
        "harbor": {"apps": {"blender": "4.2.3", "nuke": "15.1v3"}},
        "nightfall": {"apps": {"blender": "4.2.3", "houdini": "20.5.410"}},
    }
    assert {app: sorted(entry["versions"]) for app, entry in baked["catalog"].items()} == {
        "blender": ["4.2.3"],
        "houdini": ["20.5.410"],
        "nuke": ["15.1v3"],
    }
    assert "licenses" not in baked  # a bake pillar carries installs only, no boot settings
    assert contract.validate(config.load(baked)) == []
    assert proposal["covered"] == 12 and proposal["uncovered"] == []


def test_a_bad_image_count_is_refused_with_what_to_give():
    with pytest.raises(WorkstationError, match="images must be a whole number"):
        recipes.from_pillars(FLEET, images=0)
