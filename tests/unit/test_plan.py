"""plan.plan and plan.formula_data against a real store and a real depot folder."""

from __future__ import annotations

import copy
import os

import pytest

from salt_workstation import config, engine, pillar, plan

GRAINS = {"os_family": "Debian", "oscodename": "bookworm"}


@pytest.fixture
def catalog(depot):
    """blender 4.1/4.2/4.3 and nuke 15.1v3 as real archives in the depot, with their real hashes."""
    result: dict = {}
    for app, version in (
        ("blender", "4.1"),
        ("blender", "4.2"),
        ("blender", "4.3"),
        ("nuke", "15.1v3"),
    ):
        archive = depot.app_archive(app, version)
        result.setdefault(app, {"versions": {}})["versions"][version] = depot.entry(archive)
    return result


def make_config(depot, catalog, productions, retain=1, **extra):
    workstation = {
        "depot": str(depot.root),
        "retain": retain,
        "catalog": copy.deepcopy(catalog),
        "productions": productions,
        **extra,
    }
    return config.load(workstation, GRAINS)


def apply(cfg, store):
    """What `state.apply workstation.apps` does with formula_data: installs, then retention per app
    (only for apps whose installs all succeeded, as the `require` in apps.sls makes it)."""
    data = plan.formula_data(cfg, store)
    failed = set()
    for item in data["installs"]:
        version = str(item["version"])
        # the checks dcc.installed makes before it touches anything
        problems = [
            issue
            for path in item["used_by"]
            for issue in pillar.version_text(item["version"], path)[1]
        ]
        if item["spec"] is None:
            problems.append("not in the catalog")
        else:
            problems += pillar.check_version_spec(item["app"], version, item["spec"], "catalog")
        problems += pillar.check_settings({**cfg, "retain": 0})
        if problems:
            failed.add(item["id"])
            continue
        spec = pillar.resolve_spec(item["app"], version, item["spec"], cfg["depot"])
        if store.status(spec) != engine.INSTALLED:
            store.install(spec)
    removed = {}
    for item in data["retention"]:
        if any(req["dcc"] in failed for req in item["require"]):
            continue
        gone = store.prune(item["app"], item["keep"], cfg["retain"])
        if gone:
            removed[item["app"]] = gone
    return removed


SHARED = {
    "show-a": {"apps": {"blender": "4.2", "nuke": "15.1v3"}},
    "show-b": {"apps": {"blender": "4.2"}},
}


def test_two_productions_sharing_a_version_make_one_install(depot, catalog, store):
    cfg = make_config(depot, catalog, SHARED)
    data = plan.formula_data(cfg, store)
    assert [item["id"] for item in data["installs"]] == [
        "workstation-app-blender-4.2",
        "workstation-app-nuke-15.1v3",
    ]
    blender = data["installs"][0]
    assert blender["app"] == "blender" and blender["version"] == "4.2"
    assert blender["used_by"] == [
        "workstation:productions:show-a:apps:blender",
        "workstation:productions:show-b:apps:blender",
    ]
    assert blender["spec"] == catalog["blender"]["versions"]["4.2"]
    assert data["retention"] == [
        {
            "id": "workstation-app-blender-retention",
            "app": "blender",
            "keep": ["4.2"],
            "require": [{"dcc": "workstation-app-blender-4.2"}],
        },
        {
            "id": "workstation-app-nuke-retention",
            "app": "nuke",
            "keep": ["15.1v3"],
            "require": [{"dcc": "workstation-app-nuke-15.1v3"}],
        },
    ]
    assert data["repositories"] == []

    result = plan.plan(cfg, store)
    assert result["valid"] is True and result["errors"] == []
    assert result["install_root"] == str(store.layout.root)
    assert result["productions"]["show-a"]["blender"] is result["productions"]["show-b"]["blender"]
    assert result["productions"]["show-a"]["blender"] == {
        "version": "4.2",
        "dest": str(store.layout.version_dir("blender", "4.2")),
        "action": "install",
    }
    assert result["remove"] == {}


def test_retention_covers_installed_apps_no_production_wants(depot, catalog, store):
    cfg = make_config(depot, catalog, {"show-a": {"apps": {"blender": "4.2"}}})
    store.install(
        pillar.resolve_spec(
            "nuke", "15.1v3", catalog["nuke"]["versions"]["15.1v3"], str(depot.root)
        )
    )
    retention = {item["app"]: item for item in plan.formula_data(cfg, store)["retention"]}
    assert retention["nuke"]["keep"] == [] and retention["nuke"]["require"] == []


def test_actions_install_keep_replace_repair_invalid(depot, catalog, store):
    cfg = make_config(depot, catalog, SHARED)
    assert apply(cfg, store) == {}
    after = plan.plan(cfg, store)
    assert {
        p: {a: e["action"] for a, e in apps.items()} for p, apps in after["productions"].items()
    } == {
        "show-a": {"blender": "keep", "nuke": "keep"},
        "show-b": {"blender": "keep"},
    }

    # a rebuilt nuke 15.1v3 in the depot: same version, another hash -> replace
    rebuilt = depot.app_archive(
        "nuke", "15.1v3", name="nuke-15.1v3-rebuild.tar.gz", extra_files={"NEWS": (b"x", 0o644)}
    )
    catalog["nuke"]["versions"]["15.1v3"] = depot.entry(rebuilt)
    # blender's launcher deleted -> repair
    os.unlink(store.layout.version_dir("blender", "4.2") / "bin/blender")
    # show-c wants a version the catalog lacks -> invalid, with the pillar path in the error
    productions = {**SHARED, "show-c": {"apps": {"blender": "5.0"}}}
    cfg = make_config(depot, catalog, productions)
    result = plan.plan(cfg, store)
    actions = {
        p: {a: e["action"] for a, e in apps.items()} for p, apps in result["productions"].items()
    }
    assert actions == {
        "show-a": {"blender": "repair", "nuke": "replace"},
        "show-b": {"blender": "repair"},
        "show-c": {"blender": "invalid"},
    }
    assert result["valid"] is False
    errors = result["productions"]["show-c"]["blender"]["errors"]
    assert len(errors) == 1 and errors[0].startswith(
        "workstation:productions:show-c:apps:blender: blender 5.0 is not in"
    )
    assert result["errors"] == [
        {
            "path": "workstation:productions:show-c:apps:blender",
            "message": errors[0].split(": ", 1)[1],
        }
    ]

    apply(make_config(depot, catalog, SHARED), store)
    result = plan.plan(make_config(depot, catalog, SHARED), store)
    assert {e["action"] for apps in result["productions"].values() for e in apps.values()} == {
        "keep"
    }


def test_a_bad_catalog_entry_only_blocks_its_own_version(depot, catalog, store):
    del catalog["nuke"]["versions"]["15.1v3"]["hash"]
    result = plan.plan(make_config(depot, catalog, SHARED), store)
    assert result["productions"]["show-a"]["nuke"]["action"] == "invalid"
    assert result["productions"]["show-a"]["nuke"]["errors"] == [
        "workstation:catalog:nuke:versions:15.1v3:hash: is required as '<algorithm>:<hex digest>', "
        "e.g. sha256:<64 hex>; nothing is installed without it"
    ]
    assert result["productions"]["show-a"]["blender"]["action"] == "install"


def test_a_machine_wide_problem_blocks_everything(depot, catalog, store):
    cfg = make_config(depot, catalog, SHARED)
    cfg["install_root"] = "/usr"
    result = plan.plan(cfg, store)
    entries = [e for apps in result["productions"].values() for e in apps.values()]
    assert {e["action"] for e in entries} == {"invalid"}
    assert all(
        any(err.startswith("workstation:install_root:") for err in e["errors"]) for e in entries
    )


def test_a_float_version_in_a_production_is_invalid_and_says_quote_it(depot, catalog, store):
    catalog["nuke"]["versions"]["2025.10"] = catalog["nuke"]["versions"]["15.1v3"]
    cfg = make_config(depot, catalog, {"show-a": {"apps": {"nuke": 2025.1}}})
    entry = plan.plan(cfg, store)["productions"]["show-a"]["nuke"]
    assert entry["action"] == "invalid" and entry["version"] == "2025.1"
    assert any("quote it" in error for error in entry["errors"])


def test_plan_reads_no_depot(http_depot, store):
    catalog = {}
    for app, version in (("blender", "4.2"), ("nuke", "15.1v3")):
        archive = http_depot.app_archive(app, version)
        catalog.setdefault(app, {"versions": {}})["versions"][version] = http_depot.entry(archive)
    cfg = make_config(http_depot, catalog, SHARED)
    cfg["depot"] = http_depot.url
    assert {
        e["action"] for apps in plan.plan(cfg, store)["productions"].values() for e in apps.values()
    } == {"install"}
    apply(cfg, store)
    assert http_depot.requests == 2
    for _ in range(3):
        result = plan.plan(cfg, store)
        plan.formula_data(cfg, store)
    assert http_depot.requests == 2
    assert {e["action"] for apps in result["productions"].values() for e in apps.values()} == {
        "keep"
    }


@pytest.mark.parametrize("retain", [0, 1, 2])
def test_predicted_removals_are_what_the_apply_removes(depot, catalog, store, retain):
    sequence = [
        {"show-a": {"apps": {"blender": "4.1", "nuke": "15.1v3"}}},
        {"show-a": {"apps": {"blender": "4.2"}}},
        {"show-a": {"apps": {"blender": "4.1"}}},
        {"show-a": {"apps": {"blender": "4.3"}}, "show-b": {"apps": {"blender": "4.2"}}},
        {"show-b": {"apps": {"blender": "4.3"}}},
    ]
    hand_made = store.layout.version_dir("blender", "3.6")
    hand_made.mkdir(parents=True)
    for productions in sequence:
        cfg = make_config(depot, catalog, productions, retain=retain)
        predicted = plan.plan(cfg, store)["remove"]
        assert apply(cfg, store) == predicted, productions
        for app, versions in predicted.items():
            for version in versions:
                assert not store.layout.version_dir(app, version).exists()
    assert hand_made.is_dir()
    assert "4.3" in store.installed()["blender"]
    assert len(store.installed()["blender"]) <= 1 + retain


def test_rollback_order_in_the_plan(depot, catalog, store):
    for version in ("4.1", "4.2", "4.1"):
        apply(make_config(depot, catalog, {"show-a": {"apps": {"blender": version}}}), store)
    result = plan.plan(make_config(depot, catalog, {"show-a": {"apps": {"blender": "4.3"}}}), store)
    assert result["remove"] == {"blender": ["4.2"]}  # 4.1 was wanted last, so it stays for rollback


def test_unwanted_app_is_removed_down_to_retain(depot, catalog, store):
    apply(make_config(depot, catalog, SHARED, retain=0), store)
    cfg = make_config(depot, catalog, {"show-b": {"apps": {"blender": "4.2"}}}, retain=0)
    assert plan.plan(cfg, store)["remove"] == {"nuke": ["15.1v3"]}
    assert apply(cfg, store) == {"nuke": ["15.1v3"]}
    assert "nuke" not in store.installed()


def test_no_removal_is_predicted_for_an_app_whose_install_cannot_run(depot, catalog, store):
    apply(make_config(depot, catalog, {"show-a": {"apps": {"blender": "4.1"}}}, retain=0), store)
    catalog["blender"]["versions"]["4.3"]["hash"] = "sha256:short"
    cfg = make_config(depot, catalog, {"show-a": {"apps": {"blender": "4.3"}}}, retain=0)
    removed = apply(cfg, store)
    assert removed == {} and "4.1" in store.installed()["blender"]
    assert plan.plan(cfg, store)["remove"] == removed


def test_inventory(depot, catalog, store):
    cfg = make_config(depot, catalog, SHARED)
    apply(cfg, store)
    inventory = plan.inventory(cfg, store)
    assert set(inventory) == {"blender", "nuke"}
    blender = inventory["blender"]["4.2"]
    assert blender["productions"] == ["show-a", "show-b"]
    assert blender["hash"] == catalog["blender"]["versions"]["4.2"]["hash"]
    assert blender["dest"] == str(store.layout.version_dir("blender", "4.2"))
    assert blender["files"] == 4


def _parallel(cfg, store) -> dict:
    return {item["id"]: item["parallel"] for item in plan.formula_data(cfg, store)["installs"]}


def test_installs_run_in_parallel_only_when_two_or_more_will_install(depot, catalog, store):
    """Issue #16: `parallel: True` goes on the archive installs this apply makes, when there are
    two or more and install_workers allows; never on what is installed, nor on OS packages."""
    shows = {"show-a": {"apps": {"blender": "4.2", "nuke": "15.1v3"}}}
    cfg = make_config(depot, catalog, shows)
    assert _parallel(cfg, store) == {
        "workstation-app-blender-4.2": True,
        "workstation-app-nuke-15.1v3": True,
    }
    assert set(
        _parallel(make_config(depot, catalog, shows, install_workers=1), store).values()
    ) == {False}
    apply(make_config(depot, catalog, {"show-a": {"apps": {"nuke": "15.1v3"}}}), store)
    assert set(_parallel(cfg, store).values()) == {False}  # one left to install: nothing to overlap
    apply(cfg, store)
    assert set(_parallel(cfg, store).values()) == {False}  # converged: no state forks
    packaged = copy.deepcopy(catalog)
    packaged["tools"] = {"versions": {"1": {"kind": "packages", "packages": {"tool": "1.0"}}}}
    with_packages = make_config(
        depot, packaged, {"show-a": {"apps": {"blender": "4.3", "tools": "1"}}}
    )
    assert _parallel(with_packages, store)["workstation-app-tools-1"] is False


@pytest.mark.parametrize(
    ("value", "ok"),
    [("auto", True), (1, True), (64, True), (0, False), (65, False), ("4", False), (True, False)],
)
def test_install_workers_is_validated(depot, catalog, value, ok):
    issues = pillar.check_settings(make_config(depot, catalog, {}, install_workers=value))
    assert [issue.path for issue in issues] == ([] if ok else ["workstation:install_workers"])


def test_install_workers_auto_follows_the_cpu_count(monkeypatch):
    for cpus, workers in ((1, 4), (2, 8), (16, 8)):
        monkeypatch.setattr(os, "cpu_count", lambda cpus=cpus: cpus)
        assert pillar.install_workers({"install_workers": "auto"}) == workers
    assert pillar.install_workers({"install_workers": 3}) == 3
