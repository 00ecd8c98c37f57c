"""The formula as a Salt veteran reads it, through masterless `salt-call`:

- every SLS applies alone with the full example pillar (pillar_examples/, as shipped,
  with the depot pointed at a real loopback build of its catalog);
- a TD extends one state by ID in their own SLS, and that state alone changes;
- a failing execution function makes salt-call exit non-zero.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tests.support.catalog import EXAMPLES, build_depot
from tests.support.masterless import masterless_call, minion_config, system_paths_under

SLS_FILES = [
    "check",
    "repos",
    "apps",
    "gpu",
    "licenses",
    "display",
    "xserver",
    "launchers",
    "image",
]
LEAD = "ws-lead-1"  # the example top file gives leads every production


def write_pillar(root, overrides: dict) -> None:
    """The example pillar as shipped, plus one file of test overrides applied to every minion."""
    shutil.copytree(EXAMPLES, root)
    top = yaml.safe_load((root / "top.sls").read_text())
    top["base"]["*"] = ["test-overrides"]
    (root / "top.sls").write_text(yaml.safe_dump(top, sort_keys=False))  # overrides last: they win
    (root / "test-overrides.sls").write_text(yaml.safe_dump({"workstation": overrides}))


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """A lead's masterless minion with the full example pillar; installs land under the test's folder."""
    base = tmp_path_factory.mktemp("examples")
    catalog = build_depot(base / "depot")
    write_pillar(
        base / "pillar",
        {
            "depot": f"file://{base / 'depot'}",
            "catalog": catalog,
            "install_root": str(base / "studio"),
            "lookup": system_paths_under(base / "system"),
            "display": {"owner": "nobody"},  # an account every Debian machine has
        },
    )
    return minion_config(base / "etc", LEAD, base / "pillar")


def call(config, *args):
    done = masterless_call(config, *args)
    assert done.stdout, done.stderr
    return json.loads(done.stdout)["local"], done.returncode


@pytest.mark.parametrize("sls", SLS_FILES)
def test_each_sls_applies_alone_with_the_full_example_pillar(examples, sls):
    """Before: workstation.licenses failed to compile (its Autodesk state required an app install
    it did not include), and workstation.gpu required repository states it did not include."""
    shown, _ = call(examples, "state.show_sls", f"workstation.{sls}")
    ran, _ = call(examples, "state.apply", f"workstation.{sls}", "test=True")

    assert isinstance(shown, dict), shown  # a list is Salt's list of render or requisite errors
    assert isinstance(ran, dict), ran
    ids = {key.split("_|-")[1] for key in ran}
    assert set(shown) <= ids, f"states of workstation.{sls} that did not run: {set(shown) - ids}"
    unresolved = {
        key: state["comment"]
        for key, state in ran.items()
        if "Referenced state does not exist" in state["comment"]
        or "requisite" in state["comment"].lower()
    }
    assert unresolved == {}


def test_the_whole_formula_is_its_parts(examples):
    """`workstation` compiles once with every SLS, and holds exactly the states each SLS shows alone."""
    whole, code = call(examples, "state.show_sls", "workstation")
    assert code == 0 and isinstance(whole, dict), whole
    parts = set()
    for sls in SLS_FILES:
        alone, _ = call(examples, "state.show_sls", f"workstation.{sls}")
        assert isinstance(alone, dict), alone
        parts |= set(alone)
    assert parts == set(whole)


def test_a_td_extends_one_state_by_id(tmp_path):
    """A TD's own SLS includes the formula and extends one app's install to verify deep: only
    that app's changed file is noticed and repaired; the other app's stays as the shallow check sees it."""
    catalog = build_depot(tmp_path / "depot")
    studio = tmp_path / "studio"
    write_pillar(
        tmp_path / "pillar",
        {
            "depot": f"file://{tmp_path / 'depot'}",
            "catalog": catalog,
            "install_root": str(studio),
            "lookup": system_paths_under(tmp_path / "system"),
            "display": {"agents": []},
            "licenses": {},
            "productions": {"nightfall": {"apps": {"blender": "4.2.3", "houdini": "20.5.410"}}},
        },
    )
    config = minion_config(tmp_path / "etc", "ws-anim-1", tmp_path / "pillar")
    td_sls = tmp_path / "etc" / "empty" / "td"
    td_sls.mkdir(parents=True)
    (td_sls / "init.sls").write_text(
        "include:\n"
        "  - workstation.apps\n"
        "\n"
        "extend:\n"
        "  workstation-app-houdini-20.5.410:\n"
        "    dcc.installed:\n"
        "      - verify: deep\n"
    )
    first, code = call(config, "state.apply", "workstation.apps")
    assert code == 0, first
    for app, version in (("houdini", "20.5.410"), ("blender", "4.2.3")):
        library = studio / "apps" / app / version / "lib" / "core.so"
        library.write_bytes(
            library.read_bytes()[::-1]
        )  # same size, other bytes: only a re-hash sees it

    predicted, _ = call(config, "state.apply", "td", "test=True")
    repaired, code = call(config, "state.apply", "td")

    def by_id(result):
        return {key.split("_|-")[1]: state for key, state in result.items()}

    assert by_id(predicted)["workstation-app-houdini-20.5.410"]["changes"].get("repaired") is True
    assert by_id(repaired)["workstation-app-houdini-20.5.410"]["changes"].get("repaired") is True
    assert by_id(repaired)["workstation-app-blender-4.2.3"]["changes"] == {}
    assert code == 0
    verified, _ = call(config, "dcc.verify", "houdini", "20.5.410")
    assert verified["ok"] is True
    untouched, _ = call(config, "dcc.verify", "blender", "4.2.3")
    assert untouched["ok"] is False and untouched["changed"] == ["lib/core.so: content changed"]


def test_a_failing_execution_function_exits_non_zero(examples):
    """Before: `salt-call dcc.install maya 9.9` printed an error and exited 0, so scripts and image
    bakes could not see that it failed."""
    done = masterless_call(examples, "dcc.install", "maya", "9.9")
    assert done.returncode != 0
    assert "maya 9.9 was not installed" in done.stdout + done.stderr
    assert "workstation:catalog:maya:versions" in done.stdout + done.stderr
