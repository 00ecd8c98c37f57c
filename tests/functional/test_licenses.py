"""`workstation.licenses` through Salt's real loaders: every type written under a tmp root, the state
contract (test=True exact, idempotent), server changes, a broken entry, and `licenses.check`."""

from __future__ import annotations

import grp
import json
import stat
from pathlib import Path

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
ENTRY_STATES = {"workstation-license-" + name for name in ("foundry", "autodesk", "houdini", "maya2025", "vray", "katana-node")}
ENV_STATES = {"workstation-licenses-environment-profile", "workstation-licenses-environment-session"}
WRITING_STATES = ENV_STATES | {"workstation-license-" + name for name in ("houdini", "maya2025", "vray", "katana-node")}


def licenses_pillar(root: Path, helper: Path, *, foundry=("4101@rlm1", "4101@rlm2"), vray=("30304@vrlserver",),
                    autodesk=("lic1",), **top) -> dict:
    return {
        "lookup": {"os": {"licenses": {"root": str(root), "autodesk_helper": str(helper)}}},
        "licenses": {
            "foundry": {"type": "rlm", "isv": "foundry", "servers": list(foundry)},
            "autodesk": {"type": "flexlm", "vendor": "ADSKFLEX", "servers": ["27000@lic1", "27000@lic2", "27000@lic3"]},
            "houdini": {"type": "sidefx", "servers": ["sesi1", "sesi2"]},
            "maya2025": {"type": "autodesk", "product_key": CANARY_KEY, "product_version": "2025.0.0.F",
                         "servers": list(autodesk)},
            "vray": {"type": "chaos", "servers": list(vray)},
            "katana-node": {"type": "nodelocked", "path": "/opt/studio/licenses/katana.lic", "content": CANARY_CONTENT,
                            "mode": "0640", "group": GROUP, "variable": "katana_LICENSE"},
        },
        **top,
    }


def apply(loaders, test=False) -> dict:
    return loaders.modules.state.apply("workstation.licenses", test=test).raw


def mode_and_owner(path: Path):
    info = path.stat()
    return f"{stat.S_IMODE(info.st_mode):04o}", info.st_uid, grp.getgrgid(info.st_gid).gr_name


def test_every_type_dry_run_predicts_the_apply_and_a_second_apply_changes_nothing(make_loaders, tmp_path):
    root, helper = tmp_path / "root", write_autodesk_helper(tmp_path / "autodesk")
    loaders = make_loaders(grains=GRAINS, pillar=licenses_pillar(root, helper))

    predicted = apply(loaders, test=True)
    assert not root.exists(), "test=True wrote something"
    assert [call[0] for call in helper_calls(helper)] == ["list"], "test=True registered something"
    done = apply(loaders)
    again = apply(loaders)

    assert failed(done) == {}
    assert {key: state["result"] for key, state in by_id(predicted).items() if state["result"] is None} == \
        dict.fromkeys(WRITING_STATES, None)
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
    assert "SESI_LMHOST=sesi1;sesi2\n" in session and "VRAY_AUTH_CLIENT_FILE_PATH=/etc/chaos\n" in session
    assert (root / "usr/lib/sesi/hserver/.sesi_licenses.pref").read_text() == "serverhost=sesi1;sesi2\n"
    assert "<Host>vrlserver</Host>" in (root / "etc/chaos/vrlclient.xml").read_text()
    katana = root / "opt/studio/licenses/katana.lic"
    assert katana.read_text() == CANARY_CONTENT and mode_and_owner(katana) == ("0640", 0, GROUP)
    assert mode_and_owner(root / "etc/profile.d/workstation-licenses.sh") == ("0644", 0, "root")
    registered = json.loads((helper.parent / "registry.json").read_text())
    assert [(p["sel_prod_ver"], p["lic_method"], p["lic_servers"]) for p in registered] == [("2025.0.0.F", 1, ["lic1"])]
    assert by_id(done)["workstation-license-maya2025"]["changes"] == {
        "action": "register", "product_version": "2025.0.0.F", "license_method": "NETWORK",
        "server_type": "SINGLE", "servers": ["lic1"]}
    assert loaders.modules.licenses.environment()["foundry_LICENSE"] == "4101@rlm1:4101@rlm2"
    for data in (predicted, done, again, loaders.modules.state.show_sls("workstation"),
                 loaders.modules.state.show_low_sls("workstation"), loaders.modules.licenses.formula_data()):
        text = json.dumps(data, default=str)
        assert CANARY_CONTENT not in text and CANARY_KEY not in text


def test_a_server_change_rewrites_each_file_atomically_and_says_what_moved(make_loaders, tmp_path):
    root, helper = tmp_path / "root", write_autodesk_helper(tmp_path / "autodesk")
    apply(make_loaders(grains=GRAINS, pillar=licenses_pillar(root, helper)))
    session = root / "etc/environment.d/90-workstation-licenses.conf"
    vrlclient = root / "etc/chaos/vrlclient.xml"
    inodes = {path: path.stat().st_ino for path in (session, vrlclient)}
    moved = make_loaders(grains=GRAINS, pillar=licenses_pillar(root, helper, foundry=["4101@rlm3"],
                                                               vray=["30304@vrl2", "30304@vrl3"], autodesk=["lic9"]))

    predicted = apply(moved, test=True)
    done = apply(moved)

    assert changed(predicted) == changed(done)
    assert set(changed(done)) == ENV_STATES | {"workstation-license-vray", "workstation-license-maya2025"}
    assert by_id(done)["workstation-licenses-environment-session"]["changes"]["variables"] == {
        "foundry_LICENSE": {"old": "4101@rlm1:4101@rlm2", "new": "4101@rlm3"}}
    assert by_id(done)["workstation-license-vray"]["changes"]["updated"] == ["content"]
    assert by_id(done)["workstation-license-maya2025"]["changes"]["action"] == "change"
    assert "foundry_LICENSE=4101@rlm3\n" in session.read_text()
    assert "<Host1>vrl3</Host1>" in vrlclient.read_text()
    assert all(path.stat().st_ino != inode for path, inode in inodes.items()), "a file was edited in place"
    assert not [path for path in vrlclient.parent.iterdir() if path.name != "vrlclient.xml"]


def test_a_broken_license_fails_alone_and_the_environment_files_stay_as_they_were(make_loaders, tmp_path):
    root, helper = tmp_path / "root", write_autodesk_helper(tmp_path / "autodesk")
    pillar = licenses_pillar(root, helper)
    pillar["licenses"]["foundry"]["servers"] = ["4101@rlm1", "99999@rlm2"]
    loaders = make_loaders(grains=GRAINS, pillar=pillar)

    done = apply(loaders)
    whole = loaders.modules.state.apply("workstation").raw

    refused = failed(done)
    assert set(refused) == ENV_STATES | {"workstation-license-foundry"}
    assert "workstation:licenses:foundry:servers:1: port '99999'" in refused["workstation-license-foundry"]
    assert "nothing on disk was touched" in refused["workstation-licenses-environment-session"]
    assert not (root / "etc/profile.d").exists() and not (root / "etc/environment.d").exists()
    assert (root / "opt/studio/licenses/katana.lic").read_text() == CANARY_CONTENT
    assert by_id(done)["workstation-license-maya2025"]["result"] is True
    assert "workstation:licenses:foundry:servers:1" in failed(whole)["workstation-pillar-validated"]
    assert set(failed(whole)) == set(refused) | {"workstation-pillar-validated"}


def test_an_image_bake_writes_the_files_and_leaves_registration_to_the_first_boot(make_loaders, tmp_path):
    root, helper = tmp_path / "root", write_autodesk_helper(tmp_path / "autodesk")
    loaders = make_loaders(grains=GRAINS, pillar=licenses_pillar(root, helper, phase="bake"))

    done = by_id(apply(loaders))

    assert done["workstation-license-maya2025"]["result"] is True and done["workstation-license-maya2025"]["changes"] == {}
    assert "first boot" in done["workstation-license-maya2025"]["comment"]
    assert helper_calls(helper) == []
    assert done["workstation-license-katana-node"]["changes"]["created"] is True


def test_licenses_check_probes_every_server_through_the_loader(make_loaders):
    with loopback_license_servers() as ports:
        pillar = {"licenses": {
            "foundry": {"type": "rlm", "isv": "foundry", "servers": [f"{ports.accepting}@127.0.0.1", f"{ports.closed}@127.0.0.1"]},
            "houdini": {"type": "sidefx", "servers": [f"127.0.0.1:{ports.silent}", "sesi.studio.invalid"]},
        }}
        report = make_loaders(grains=GRAINS, pillar=pillar).modules.licenses.check(timeout=0.5)

    assert report["ok"] is False
    assert report["servers"] == {
        "foundry": {f"{ports.accepting}@127.0.0.1": "ok", f"{ports.closed}@127.0.0.1": "refused"},
        "houdini": {f"127.0.0.1:{ports.silent}": "timeout", "sesi.studio.invalid": "unresolved"},
    }


def test_autodesk_before_its_helper_is_installed_is_predicted_then_fails_with_the_fix(make_loaders, tmp_path):
    missing = tmp_path / "not-installed-yet" / "AdskLicensingInstHelper"
    loaders = make_loaders(grains=GRAINS, pillar=licenses_pillar(tmp_path / "root", missing))

    predicted = by_id(apply(loaders, test=True))["workstation-license-maya2025"]
    done = by_id(apply(loaders))["workstation-license-maya2025"]

    assert predicted["result"] is None and predicted["changes"]["action"] == "register"
    assert "not installed yet" in predicted["comment"]
    assert done["result"] is False and f"not at {missing}" in done["comment"]
    assert CANARY_KEY not in json.dumps([predicted, done])


def test_a_standalone_state_refuses_a_secret_passed_as_an_argument(loaders, tmp_path):
    entry = {"type": "nodelocked", "path": "/opt/k.lic", "content": CANARY_CONTENT}

    result = loaders.states.licenses.configured("node", entry=entry, path=str(tmp_path / "k.lic"))

    assert result.result is False and "content_pillar" in result.comment
    assert CANARY_CONTENT not in result.comment and not (tmp_path / "k.lic").exists()
