"""`workstation.licenses` through Salt's real loaders: every type written under a tmp root, the state
contract (test=True exact, idempotent), server changes, a broken entry, and `licenses.check`."""

from __future__ import annotations

import grp
import json
import stat
from pathlib import Path
from unittest.mock import ANY

import pytest
import yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support.catalog import EXAMPLES
from tests.support.states import by_id, changed, failed
from tests.unit.test_licenses import (
    CANARY_CONTENT,
    CANARY_KEY,
    helper_calls,
    loopback_license_servers,
    write_autodesk_helper,
)

GRAINS = {"os_family": "Debian", "oscodename": "bookworm"}
GROUP = next(group for group in grp.getgrall() if group.gr_gid != 0).gr_name
ENV_STATES = {
    "workstation-licenses-environment-profile-managed",
    "workstation-licenses-environment-session-managed",
}
FILE_STATES = {
    f"workstation-licenses-{name}-file-managed" for name in ("houdini", "vray", "katana-node")
}
WRITING_STATES = ENV_STATES | FILE_STATES | {"workstation-licenses-maya2025-registered"}


def licenses_pillar(
    root: Path,
    helper: Path,
    *,
    foundry=("4101@rlm1", "4101@rlm2"),
    vray=("30304@vrlserver",),
    autodesk=("lic1",),
    **top,
) -> dict:
    return {
        "lookup": {"os": {"licenses": {"root": str(root), "autodesk_helper": str(helper)}}},
        "licenses": {
            "foundry": {"type": "rlm", "isv": "foundry", "servers": list(foundry)},
            "autodesk": {
                "type": "flexlm",
                "vendor": "ADSKFLEX",
                "servers": ["27000@lic1", "27000@lic2", "27000@lic3"],
            },
            "houdini": {"type": "sidefx", "servers": ["sesi1", "sesi2"]},
            "maya2025": {
                "type": "autodesk",
                "product_key": CANARY_KEY,
                "product_version": "2025.0.0.F",
                "servers": list(autodesk),
            },
            "vray": {"type": "chaos", "servers": list(vray)},
            "katana-node": {
                "type": "nodelocked",
                "path": "/opt/studio/licenses/katana.lic",
                "content": CANARY_CONTENT,
                "mode": "0640",
                "group": GROUP,
                "variable": "katana_LICENSE",
            },
        },
        **top,
    }


def apply(loaders, test=False) -> dict:
    return loaders.modules.state.apply("workstation.licenses", test=test).raw


def mode_and_owner(path: Path):
    info = path.stat()
    return f"{stat.S_IMODE(info.st_mode):04o}", info.st_uid, grp.getgrgid(info.st_gid).gr_name


def test_every_type_dry_run_predicts_the_apply_and_a_second_apply_changes_nothing(
    make_loaders, tmp_path
):
    root, helper = tmp_path / "root", write_autodesk_helper(tmp_path / "autodesk")
    loaders = make_loaders(grains=GRAINS, pillar=licenses_pillar(root, helper))

    predicted = apply(loaders, test=True)
    assert not root.exists(), "test=True wrote something"
    assert [call[0] for call in helper_calls(helper)] == ["list"], "test=True registered something"
    done = apply(loaders)
    again = apply(loaders)

    assert failed(done) == {}
    assert {
        key: state["result"] for key, state in by_id(predicted).items() if state["result"] is None
    } == dict.fromkeys(WRITING_STATES, None)
    assert changed(predicted) == changed(done) and set(changed(done)) == WRITING_STATES
    assert changed(again) == {} and failed(again) == {}
    profile = (root / "etc/profile.d/workstation-licenses.sh").read_text()
    assert profile.splitlines()[1:] == [
        "export ADSKFLEX_LICENSE_FILE=27000@lic1:27000@lic2:27000@lic3",
        "export SESI_LMHOST='sesi1;sesi2'",
        "export VRAY_AUTH_CLIENT_FILE_PATH=/etc/chaos",
        "export foundry_LICENSE=4101@rlm1:4101@rlm2",
        "export katana_LICENSE=/opt/studio/licenses/katana.lic",
    ]
    session = (root / "etc/environment.d/90-workstation-licenses.conf").read_text()
    assert (
        "SESI_LMHOST=sesi1;sesi2\n" in session
        and "VRAY_AUTH_CLIENT_FILE_PATH=/etc/chaos\n" in session
    )
    assert (
        root / "usr/lib/sesi/hserver/.sesi_licenses.pref"
    ).read_text() == "serverhost=sesi1;sesi2\n"
    assert "<Host>vrlserver</Host>" in (root / "etc/chaos/vrlclient.xml").read_text()
    katana = root / "opt/studio/licenses/katana.lic"
    assert katana.read_text() == CANARY_CONTENT and mode_and_owner(katana) == ("0640", 0, GROUP)
    assert mode_and_owner(root / "etc/profile.d/workstation-licenses.sh") == ("0644", 0, "root")
    registered = json.loads((helper.parent / "registry.json").read_text())
    assert [(p["sel_prod_ver"], p["lic_method"], p["lic_servers"]) for p in registered] == [
        ("2025.0.0.F", 1, ["lic1"])
    ]
    assert by_id(done)["workstation-licenses-maya2025-registered"]["changes"] == {
        "action": "register",
        "product_version": "2025.0.0.F",
        "license_method": "NETWORK",
        "server_type": "SINGLE",
        "servers": ["lic1"],
    }
    assert loaders.modules.licenses.environment()["foundry_LICENSE"] == "4101@rlm1:4101@rlm2"
    for data in (
        predicted,
        done,
        again,
        loaders.modules.state.show_sls("workstation"),
        loaders.modules.state.show_low_sls("workstation"),
        loaders.modules.licenses.plan(),
    ):
        text = json.dumps(data, default=str)
        assert CANARY_CONTENT not in text and CANARY_KEY not in text


def test_a_server_change_rewrites_each_file_atomically_and_says_what_moved(make_loaders, tmp_path):
    root, helper = tmp_path / "root", write_autodesk_helper(tmp_path / "autodesk")
    apply(make_loaders(grains=GRAINS, pillar=licenses_pillar(root, helper)))
    session = root / "etc/environment.d/90-workstation-licenses.conf"
    vrlclient = root / "etc/chaos/vrlclient.xml"
    inodes = {path: path.stat().st_ino for path in (session, vrlclient)}
    moved = make_loaders(
        grains=GRAINS,
        pillar=licenses_pillar(
            root,
            helper,
            foundry=["4101@rlm3"],
            vray=["30304@vrl2", "30304@vrl3"],
            autodesk=["lic9"],
        ),
    )

    predicted = apply(moved, test=True)
    done = apply(moved)

    assert changed(predicted) == changed(done)
    assert set(changed(done)) == ENV_STATES | {
        "workstation-licenses-vray-file-managed",
        "workstation-licenses-maya2025-registered",
    }
    assert by_id(done)["workstation-licenses-environment-session-managed"]["changes"][
        "variables"
    ] == {"foundry_LICENSE": {"old": "4101@rlm1:4101@rlm2", "new": "4101@rlm3"}}
    assert by_id(done)["workstation-licenses-vray-file-managed"]["changes"]["updated"] == [
        "content"
    ]
    assert by_id(done)["workstation-licenses-maya2025-registered"]["changes"]["action"] == "change"
    assert "foundry_LICENSE=4101@rlm3\n" in session.read_text()
    assert "<Host1>vrl3</Host1>" in vrlclient.read_text()
    assert all(path.stat().st_ino != inode for path, inode in inodes.items()), (
        "a file was edited in place"
    )
    assert not [path for path in vrlclient.parent.iterdir() if path.name != "vrlclient.xml"]


def test_a_broken_license_fails_alone_and_the_environment_files_stay_as_they_were(
    make_loaders, tmp_path
):
    root, helper = tmp_path / "root", write_autodesk_helper(tmp_path / "autodesk")
    pillar = licenses_pillar(root, helper)
    pillar["licenses"]["foundry"]["servers"] = ["4101@rlm1", "99999@rlm2"]
    loaders = make_loaders(grains=GRAINS, pillar=pillar)

    done = apply(loaders)
    whole = loaders.modules.state.apply("workstation").raw

    refused = failed(done)
    assert set(refused) == ENV_STATES | {"workstation-licenses-pillar-valid"}
    assert (
        "workstation:licenses:foundry:servers:1: port '99999'"
        in refused["workstation-licenses-pillar-valid"]
    )
    assert "nothing they manage was touched" in refused["workstation-licenses-pillar-valid"]
    # The environment files require a valid section: Salt does not run them, and says which requisite failed.
    assert (
        "workstation-licenses-pillar-valid"
        in refused["workstation-licenses-environment-session-managed"]
    )
    assert not (root / "etc/profile.d").exists() and not (root / "etc/environment.d").exists()
    assert (root / "opt/studio/licenses/katana.lic").read_text() == CANARY_CONTENT
    assert by_id(done)["workstation-licenses-maya2025-registered"]["result"] is True
    assert "workstation:licenses:foundry:servers:1" in failed(whole)["workstation-pillar-validated"]
    assert set(failed(whole)) == set(refused) | {"workstation-pillar-validated"}


def test_an_image_bake_writes_the_files_and_leaves_registration_to_the_first_boot(
    make_loaders, tmp_path
):
    root, helper = tmp_path / "root", write_autodesk_helper(tmp_path / "autodesk")
    loaders = make_loaders(grains=GRAINS, pillar=licenses_pillar(root, helper, phase="bake"))

    done = by_id(apply(loaders))

    registration = done["workstation-licenses-maya2025-registered"]
    assert registration["result"] is True and registration["changes"] == {}
    assert "first boot" in registration["comment"]
    assert helper_calls(helper) == []
    assert done["workstation-licenses-katana-node-file-managed"]["changes"]["created"] is True


def test_licenses_check_probes_every_server_through_the_loader(make_loaders):
    with loopback_license_servers() as ports:
        pillar = {
            "licenses": {
                "foundry": {
                    "type": "rlm",
                    "isv": "foundry",
                    "servers": [f"{ports.accepting}@127.0.0.1", f"{ports.closed}@127.0.0.1"],
                },
                "houdini": {
                    "type": "sidefx",
                    "servers": [f"127.0.0.1:{ports.silent}", "sesi.studio.invalid"],
                },
            }
        }
        report = make_loaders(grains=GRAINS, pillar=pillar).modules.licenses.check(timeout=0.5)

    assert report["ok"] is False
    assert report["servers"] == {
        "foundry": {f"{ports.accepting}@127.0.0.1": "ok", f"{ports.closed}@127.0.0.1": "refused"},
        "houdini": {f"127.0.0.1:{ports.silent}": "timeout", "sesi.studio.invalid": "unresolved"},
    }


def test_autodesk_before_its_helper_is_installed_is_predicted_then_fails_with_the_fix(
    make_loaders, tmp_path
):
    missing = tmp_path / "not-installed-yet" / "AdskLicensingInstHelper"
    loaders = make_loaders(grains=GRAINS, pillar=licenses_pillar(tmp_path / "root", missing))

    predicted = by_id(apply(loaders, test=True))["workstation-licenses-maya2025-registered"]
    done = by_id(apply(loaders))["workstation-licenses-maya2025-registered"]

    assert predicted["result"] is None and predicted["changes"]["action"] == "register"
    assert "not installed yet" in predicted["comment"]
    assert done["result"] is False and f"not at {missing}" in done["comment"]
    assert CANARY_KEY not in json.dumps([predicted, done])


def test_a_standalone_state_refuses_a_secret_passed_as_an_argument(loaders, tmp_path):
    """The states take the pillar path of a secret; handed the secret itself, Salt refuses the call."""
    target = tmp_path / "k.lic"

    with pytest.raises(
        SaltInvocationError, match="'content' is an invalid keyword argument"
    ) as refused:
        loaders.modules.state.single(
            "licenses.license_file",
            name=str(target),
            content=CANARY_CONTENT,
            content_pillar="workstation:licenses:node:content",
        )

    assert CANARY_CONTENT not in str(refused.value) and not target.exists()


def example_pillar(**overrides) -> dict:
    """The full example pillar a lead's machine gets (pillar_examples/: studio, catalog, licenses, every production)."""
    merged: dict = {}
    for name in ("studio", "catalog", "licenses", "nightfall", "harbor", "lighthouse"):
        data = yaml.safe_load((EXAMPLES / "workstation" / f"{name}.sls").read_text())["workstation"]
        for key, value in data.items():
            merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    return {**merged, **overrides}


def test_show_sls_lists_the_license_states_with_their_ids_and_requisites(make_loaders, tmp_path):
    """The SLS is the state graph: each state under its permanent ID, with its function and requisites; the
    Autodesk registration requires the Maya install (workstation.apps, included), the environment files the
    pillar check."""
    root = tmp_path / "root"
    pillar = example_pillar(
        install_root=str(tmp_path / "studio"),
        lookup={"os": {"licenses": {"root": str(root), "autodesk_helper": "/opt/adsk/helper"}}},
    )
    loaders = make_loaders(grains=GRAINS, pillar=pillar)

    shown = loaders.modules.state.show_sls("workstation.licenses")

    assert isinstance(shown, dict), shown  # a list is Salt's list of render or requisite errors
    graph = {}
    for state_id, state in shown.items():
        if state["__sls__"] == "workstation.licenses":
            (module,) = [key for key in state if not key.startswith("__")]
            function = next(arg for arg in state[module] if isinstance(arg, str))
            args = {
                key: value
                for arg in state[module]
                if isinstance(arg, dict)
                for key, value in arg.items()
            }
            graph[state_id] = (f"{module}.{function}", args.pop("require", None), args)
    valid = [{"licenses": "workstation-licenses-pillar-valid"}]
    assert {state_id: found[:2] for state_id, found in graph.items()} == {
        "workstation-licenses-pillar-valid": ("licenses.pillar_valid", None),
        "workstation-licenses-environment-profile-managed": ("licenses.environment_file", valid),
        "workstation-licenses-environment-session-managed": ("licenses.environment_file", valid),
        "workstation-licenses-houdini-file-managed": ("licenses.vendor_file", None),
        "workstation-licenses-maya2025-registered": (
            "licenses.autodesk_registered",
            [{"dcc": "workstation-app-maya-2025.3"}],
        ),
    }
    assert shown["workstation-app-maya-2025.3"]["__sls__"] == "workstation.apps"
    assert graph["workstation-licenses-pillar-valid"][2]["errors"] == []
    assert graph["workstation-licenses-environment-session-managed"][2] == {
        "name": str(root / "etc/environment.d/90-workstation-licenses.conf"),
        "style": "environment.d",
        "order": ANY,
        "variables": {
            "SESI_LMHOST": "sesi1.studio.example",
            "foundry_LICENSE": "4101@rlm1.studio.example:4101@rlm2.studio.example",
        },
    }
    assert (
        graph["workstation-licenses-houdini-file-managed"][2]["contents"]
        == "serverhost=sesi1.studio.example\n"
    )
    registration = graph["workstation-licenses-maya2025-registered"][2]
    assert (
        registration["name"],
        registration["product_key_pillar"],
        registration["servers"],
        registration["helper"],
    ) == (
        "maya2025",
        "workstation:licenses:maya2025:product_key",
        ["lic1.studio.example"],
        "/opt/adsk/helper",
    )
    assert "657Q1" not in json.dumps(shown)  # the example's product key


def test_a_td_extends_one_license_state_by_id_in_their_own_sls(make_loaders, tmp_path):
    """A TD's SLS includes the formula and extends the Maya registration: it waits for the TD's own state
    (the licensing service, say) and runs the helper the TD names; the other license states are as the formula
    wrote them."""
    root, helper = tmp_path / "root", write_autodesk_helper(tmp_path / "autodesk")
    td_helper = write_autodesk_helper(tmp_path / "td-autodesk")
    loaders = make_loaders(grains=GRAINS, pillar=licenses_pillar(root, helper))
    own = Path(loaders.opts["file_roots"]["base"][0]) / "studio"
    own.mkdir()
    (own / "licenses.sls").write_text(f"""\
include:
  - workstation.licenses

studio-licensing-service-running:
  test.succeed_without_changes: []

extend:
  workstation-licenses-maya2025-registered:
    licenses:
      - helper: {td_helper}
      - timeout: 600
      - require:
        - test: studio-licensing-service-running
""")

    done = by_id(loaders.modules.state.apply("studio.licenses").raw)

    assert failed(done) == {}
    registration = done["workstation-licenses-maya2025-registered"]
    assert registration["changes"]["action"] == "register"
    # included first, yet the registration now waits for the TD's state, and ran the TD's helper
    assert done["studio-licensing-service-running"]["__run_num__"] < registration["__run_num__"]
    assert [call[0] for call in helper_calls(td_helper)] == ["list", "list", "register", "list"]
    assert helper_calls(helper) == []
    assert set(changed(done)) == WRITING_STATES


def test_execution_functions_raise_the_salt_way_and_states_name_what_failed(loaders, tmp_path):
    folder = tmp_path / "vrlclient.xml"
    (folder / "kept").mkdir(parents=True)

    with pytest.raises(
        CommandExecutionError, match=f"{folder} is a folder; remove it so the file can be written"
    ):
        loaders.modules.licenses.write_file(str(folder), "<VRLClient/>\n")
    with pytest.raises(SaltInvocationError, match="octal mode"):
        loaders.modules.licenses.file_changes(str(tmp_path / "x"), "x", mode="rw-r--r--")
    with pytest.raises(SaltInvocationError, match="variable 'HOME_LICENSE'"):
        loaders.modules.licenses.write_environment(
            str(tmp_path / "env.conf"), {"HOME_LICENSE": "$HOME"}
        )
    with pytest.raises(
        CommandExecutionError, match="workstation:licenses:nope:content: is required"
    ):
        loaders.modules.licenses.write_secret_file(
            str(tmp_path / "k.lic"), "workstation:licenses:nope:content"
        )

    refused = loaders.states.licenses.vendor_file(
        str(folder), contents="<VRLClient/>\n", license="vray"
    )

    assert refused.result is False and refused.changes == {}
    assert refused.comment.startswith(f"{folder} (workstation:licenses:vray) was not written: ")
    assert (folder / "kept").is_dir() and not (tmp_path / "env.conf").exists()
