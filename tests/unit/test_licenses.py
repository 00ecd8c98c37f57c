"""License clients: validation with exact pillar paths, what each client reads, files, the Autodesk helper, probes."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import socket
import stat
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from salt_workstation import config, contract, licenses, secrets
from salt_workstation.errors import DiskError, WorkstationError
from salt_workstation.licenses import contract as licenses_contract
from salt_workstation.licenses import effects, status
from salt_workstation.licenses import plan as licenses_plan
from tests.unit.test_engine_faults import needs_root, small_tmpfs

GRAINS = {"os_family": "Debian", "oscodename": "bookworm"}
CANARY_CONTENT = "LICENSE katana-node CANARY-7f3a9c-unit uncounted hostid=ANY"
CANARY_KEY = "9Z9Z9"

SECTION = {
    "foundry": {"type": "rlm", "isv": "foundry", "servers": ["4101@rlm1", "4101@rlm2"]},
    "redshift": {"type": "rlm", "isv": "redshift", "servers": ["5054@rlm1"]},
    "autodesk": {
        "type": "flexlm",
        "servers": [["27000@lic1", "27000@lic2", "27000@lic3"], "27000@lic9"],
    },
    "houdini": {"type": "sidefx", "servers": ["sesi1", "sesi2:1715"]},
    "maya2025": {
        "type": "autodesk",
        "product_key": CANARY_KEY,
        "product_version": "2025.0.0.F",
        "servers": ["lic1"],
    },
    "vray": {"type": "chaos", "servers": ["30304@vrlserver", "30304@vrlbackup"]},
    "katana-node": {
        "type": "nodelocked",
        "path": "/opt/studio/licenses/katana.lic",
        "content": CANARY_CONTENT,
        "mode": "0640",
        "group": "artists",
        "variable": "katana_LICENSE",
    },
}


def merged(section=None, **top) -> dict:
    return config.load({"licenses": SECTION if section is None else section, **top}, GRAINS)


def issues_of(section=None, **top) -> dict[str, str]:
    return {issue.path: issue.message for issue in licenses.check(merged(section, **top))}


def ensure_file(path, data, mode, owner, group, test):
    """What the licenses states do with a file, through the core: what differs (status), then the write (effects)."""
    changes = status.file_changes(path, data, mode, owner, group)
    if changes and not test:
        effects.write_file(path, data, mode, *status.account_ids(owner, group))
    return changes


def ensure_environment_file(path, variables, style, test):
    changes = status.environment_changes(path, variables, style)
    if changes and not test:
        effects.write_environment(path, variables, style, 0, 0)
    return changes


def test_one_license_of_every_type_is_valid_and_sets_what_each_client_reads():
    cfg = merged()

    variables, issues = licenses_plan.environment(
        cfg["licenses"], licenses_contract.parameters(cfg)
    )

    assert licenses.check(cfg) == [] and issues == []
    assert (
        variables
        == {
            "ADSKFLEX_LICENSE_FILE": "27000@lic1,27000@lic2,27000@lic3:27000@lic9",  # a triad, then a fallback
            "SESI_LMHOST": "sesi1;sesi2:1715",
            "VRAY_AUTH_CLIENT_FILE_PATH": "/etc/chaos",
            "foundry_LICENSE": "4101@rlm1:4101@rlm2",
            "katana_LICENSE": "/opt/studio/licenses/katana.lic",
            "redshift_LICENSE": "5054@rlm1",
        }
    )
    assert licenses_contract.variables_of({"type": "rlm", "servers": ["5053@rlm"]}, {}) == {
        "RLM_LICENSE": "5053@rlm"
    }
    assert licenses_contract.variables_of(
        {"type": "flexlm", "vendor": "mlm", "servers": ["27000@a"]}, {}
    ) == {"MLM_LICENSE_FILE": "27000@a"}


@pytest.mark.parametrize(
    ("entry", "path", "words"),
    [
        ({"type": "rlm", "servers": ["4101rlm1"]}, "servers:0", "is not port@host"),
        ({"type": "rlm", "servers": ["70000@rlm1"]}, "servers:0", "from 1 to 65535"),
        ({"type": "rlm", "servers": ["0@rlm1"]}, "servers:0", "from 1 to 65535"),
        ({"type": "rlm", "servers": ["4101@"]}, "servers:0", "not a valid host name"),
        ({"type": "rlm", "servers": ["4101@rlm_1"]}, "servers:0", "not a valid host name"),
        ({"type": "rlm", "servers": [4101]}, "servers:0", "must be a server as port@host"),
        ({"type": "rlm", "servers": []}, "servers", "is required"),
        ({"type": "rlm", "isv": "foundry license", "servers": ["4101@a"]}, "isv", "ISV name"),
        ({"type": "flexlm", "servers": [["27000@a", "27000@b"]]}, "servers:0", "exactly 3 servers"),
        (
            {"type": "flexlm", "servers": [["27000@a", "27000@b", "b@c"]]},
            "servers:0:2",
            "is not a port number",
        ),
        ({"type": "sidefx", "servers": ["sesi1:99999"]}, "servers:0", "from 1 to 65535"),
        ({"type": "chaos", "servers": ["1@a", "1@b", "1@c", "1@d"]}, "servers", "at most 3"),
        (
            {
                "type": "autodesk",
                "product_key": "657Q1",
                "product_version": "2025.0.0.F",
                "servers": ["a", "b"],
            },
            "servers",
            "SINGLE takes exactly 1",
        ),
        (
            {
                "type": "autodesk",
                "product_key": "657Q1",
                "product_version": 2025.0,
                "servers": ["a"],
            },
            "product_version",
            "quoted",
        ),
        (
            {
                "type": "autodesk",
                "product_key": "657Q1",
                "product_version": "2025.0.0.F",
                "servers": ["a"],
                "server_type": "TRIAD",
            },
            "server_type",
            "SINGLE, REDUNDANT, DISTRIBUTED",
        ),
        ({"type": "nodelocked", "path": "licenses/k.lic", "content": "x"}, "path", "absolute path"),
        ({"type": "nodelocked", "path": "/opt/../etc/shadow", "content": "x"}, "path", "no '..'"),
        (
            {"type": "nodelocked", "path": "/opt/licenses/.", "content": "x"},
            "path",
            "no '..', '.' or '//'",
        ),
        (
            {"type": "nodelocked", "path": "/opt/licenses//k.lic", "content": "x"},
            "path",
            "no '..', '.' or '//'",
        ),
        (
            {"type": "nodelocked", "path": "/opt/licenses/.k.lic", "content": "x"},
            "path",
            "license file names are",
        ),
        (
            {"type": "nodelocked", "path": "/opt/k.lic", "content": "x", "mode": "0644"},
            "mode",
            '"0600" or "0640"',
        ),
        (
            {"type": "nodelocked", "path": "/opt/k.lic", "content": "x", "group": "Artists Group"},
            "group",
            "group name",
        ),
        ({"type": "rlmm", "servers": ["4101@a"]}, "type", "did you mean 'rlm'?"),
        ({"servers": ["4101@a"]}, "type", "is required"),
        (
            {"type": "rlm", "servers": ["4101@a"], "vendor": "x"},
            "vendor",
            "does not apply to type 'rlm'",
        ),
        ({"type": "rlm", "servres": ["4101@a"]}, "servres", "did you mean 'servers'?"),
    ],
)
def test_a_bad_entry_is_reported_at_its_exact_path(entry, path, words):
    found = issues_of({"lic": entry})

    assert f"workstation:licenses:lic:{path}" in found, found
    assert words in found[f"workstation:licenses:lic:{path}"]


def test_unquoted_yaml_mode_0640_is_accepted_as_the_number_yaml_makes_of_it():
    entry = yaml.safe_load("{type: nodelocked, path: /opt/k.lic, content: x, mode: 0640}")

    assert entry["mode"] == 0o640 and issues_of({"lic": entry}) == {}


def test_clashing_entries_are_refused_with_the_entry_they_clash_with():
    found = issues_of(
        {
            "nuke": {"type": "rlm", "isv": "foundry", "servers": ["4101@a"]},
            "mari": {"type": "rlm", "isv": "foundry", "servers": ["4101@b"]},
            "houdini": {"type": "sidefx", "servers": ["a"]},
            "houdini-farm": {"type": "sidefx", "servers": ["b"]},
            "key-a": {"type": "nodelocked", "path": "/opt/k.lic", "content": "x"},
            "key-b": {"type": "nodelocked", "path": "/opt/k.lic", "content": "y"},
        }
    )

    assert (
        "workstation:licenses:mari" in found["workstation:licenses:nuke"]
    )  # sorted: mari claims foundry_LICENSE first
    assert "workstation:licenses:houdini" in found["workstation:licenses:houdini-farm"]
    assert "workstation:licenses:key-a" in found["workstation:licenses:key-b:path"]


def test_secrets_are_judged_but_never_quoted():
    bad = {
        "maya": {
            "type": "autodesk",
            "product_key": "CANARY-LONG-KEY",
            "product_version": "2025.0.0.F",
            "servers": ["a"],
        },
        "node": {"type": "nodelocked", "path": "/opt/k.lic", "content": 987654321},
    }
    found = issues_of(bad)

    assert set(found) == {
        "workstation:licenses:maya:product_key",
        "workstation:licenses:node:content",
    }
    assert "CANARY-LONG-KEY" not in str(found) and "987654321" not in str(found)
    assert "never shown" in found["workstation:licenses:maya:product_key"]
    redacted = secrets.redact(merged())
    assert CANARY_KEY not in str(redacted) and CANARY_CONTENT not in str(redacted)
    assert redacted["licenses"]["katana-node"]["content"] == secrets.MASK


def test_productions_whose_apps_need_an_undefined_license_are_told_which_and_where():
    hash_ = "sha256:" + "ab" * 32
    catalog = {
        "nuke": {
            "versions": {"15.1v3": {"source": "n.tgz", "hash": hash_, "licenses": ["foundry"]}}
        },
        "maya": {
            "versions": {
                "2025.3": {"source": "m.tgz", "hash": hash_, "licenses": ["maya2025"]},
                "2024.2": {"source": "m.tgz", "hash": hash_, "licenses": "maya2024"},
            }
        },
    }
    productions = {"nightfall": {"apps": {"nuke": "15.1v3", "maya": "2025.3"}}}
    section = {"foundry": SECTION["foundry"]}
    cfg = merged(section, catalog=catalog, productions=productions)

    found = {issue.path: issue for issue in contract.validate(cfg)}

    missing = found["workstation:productions:nightfall:apps:maya"]
    assert "needs license 'maya2025'" in missing.message
    assert "workstation:catalog:maya:versions:2025.3:licenses" in missing.message
    assert missing.app is None  # the app still installs; only launching it needs the license
    assert (
        "must list license names"
        in found["workstation:catalog:maya:versions:2024.2:licenses"].message
    )
    assert "workstation:productions:nightfall:apps:nuke" not in found


def test_machine_layout_parameters_are_checked():
    found = issues_of(
        {},
        lookup={
            "os": {"licenses": {"root": "relative/root", "autodesk_timeout": 0, "chaos": "/x"}}
        },
    )

    assert "absolute path" in found["workstation:os:licenses:root"]
    assert "positive number" in found["workstation:os:licenses:autodesk_timeout"]
    assert "did you mean 'chaos_dir'" in found["workstation:os:licenses:chaos"]


def test_secret_fields_take_sdb_references_and_judge_their_values_only_where_resolved():
    section = {
        "maya2025": {**SECTION["maya2025"], "product_key": "sdb://vault/licenses/maya"},
        "katana-node": {**SECTION["katana-node"], "content": "sdb://vault/licenses/katana"},
    }

    assert issues_of(section) == {}
    assert licenses_contract.check_product_key("sdb://vault/k", "p") == []
    assert "sdb://<profile>/<key>" in licenses_contract.check_product_key("nope", "p")[0].message
    plan = licenses_plan.desired(merged(section))
    assert "sdb://" not in json.dumps(plan)  # the plan carries pillar paths, not even references


def test_environment_files_follow_the_machines_folders_in_lookup_os():
    folders = {"profile_dir": "/srv/trial/profile.d", "environment_dir": "/srv/trial/env.d"}
    params = licenses_contract.parameters(merged(lookup={"os": folders}))
    named = licenses_contract.parameters(
        merged(lookup={"os": {**folders, "licenses": {"profile_file": "/etc/p/ws.sh"}}})
    )

    assert params["profile_file"] == "/srv/trial/profile.d/workstation-licenses.sh"
    assert params["environment_file"] == "/srv/trial/env.d/90-workstation-licenses.conf"
    assert named["profile_file"] == "/etc/p/ws.sh"  # os:licenses names the file outright
    assert licenses_contract.parameters(merged())["profile_file"] == (
        "/etc/profile.d/workstation-licenses.sh"
    )
    found = issues_of({}, lookup={"os": {"profile_dir": "relative"}})
    assert "workstation:lookup:os:profile_dir" in found["workstation:os:profile_dir"]
    assert [item["path"] for item in licenses_plan.desired(merged())["environment_files"]] == [
        "/etc/profile.d/workstation-licenses.sh",
        "/etc/environment.d/90-workstation-licenses.conf",
    ]


def test_environment_files_render_for_shells_and_for_systemd_and_read_back():
    variables = {"SESI_LMHOST": "sesi1;sesi2", "foundry_LICENSE": "4101@rlm1:4101@rlm2"}

    profile = licenses_plan.render_environment(variables, "profile")
    session = licenses_plan.render_environment(variables, "environment.d")

    assert profile.splitlines()[1:] == [
        "export SESI_LMHOST='sesi1;sesi2'",
        "export foundry_LICENSE=4101@rlm1:4101@rlm2",
    ]
    assert session.splitlines()[1:] == [
        "SESI_LMHOST=sesi1;sesi2",
        "foundry_LICENSE=4101@rlm1:4101@rlm2",
    ]
    assert profile.startswith("# Managed by salt-workstation")
    assert status.parse_environment(profile) == variables == status.parse_environment(session)


def test_vendor_files_render_the_formats_their_clients_read():
    assert licenses_plan.render_sidefx(SECTION["houdini"]) == "serverhost=sesi1;sesi2:1715\n"
    xml = licenses_plan.render_vrlclient(SECTION["vray"])
    assert (
        textwrap.dedent("""\
        <VRLClient>
          <LicServer>
            <Host>vrlserver</Host>
            <Port>30304</Port>
            <Host1>vrlbackup</Host1>
            <Port1>30304</Port1>
            <Host2></Host2>
            <Port2>30304</Port2>
            <User></User>
            <Pass></Pass>
          </LicServer>
        </VRLClient>
        """)
        in xml
    )


def _other_group():
    """A group of this machine other than root's, for ownership checks."""
    return next(group for group in grp.getgrall() if group.gr_gid != 0)


def test_a_secret_file_is_owned_and_moded_before_its_first_byte(tmp_path, monkeypatch):
    group = _other_group()
    target = tmp_path / "licenses" / "katana.lic"
    seen = []
    real_write = os.write

    def watching_write(descriptor, data):
        info = os.fstat(descriptor)
        seen.append((stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, info.st_size))
        return real_write(descriptor, data)

    monkeypatch.setattr(os, "write", watching_write)
    changes = ensure_file(
        str(target), CANARY_CONTENT.encode(), 0o640, "root", group.gr_name, test=False
    )
    monkeypatch.undo()

    assert seen and seen[0] == (0o640, 0, group.gr_gid, 0)
    info = target.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o640, group.gr_gid)
    assert target.read_text() == CANARY_CONTENT
    assert changes == {
        "path": str(target),
        "mode": "0640",
        "owner": "root",
        "group": group.gr_name,
        "created": True,
    }
    assert CANARY_CONTENT not in str(changes)
    assert sorted(path.name for path in target.parent.iterdir()) == [
        "katana.lic"
    ]  # no temporary left behind


def test_files_are_rewritten_only_when_they_differ_and_never_through_a_link(tmp_path):
    target = tmp_path / "vrlclient.xml"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not ours\n")
    target.symlink_to(elsewhere)

    predicted = ensure_file(str(target), b"new\n", 0o644, "root", "root", test=True)
    assert target.is_symlink() and elsewhere.read_text() == "not ours\n"
    done = ensure_file(str(target), b"new\n", 0o644, "root", "root", test=False)
    inode = target.stat().st_ino
    again = ensure_file(str(target), b"new\n", 0o644, "root", "root", test=False)
    untouched = target.stat().st_ino == inode
    target.chmod(0o600)
    mode_only = ensure_file(str(target), b"new\n", 0o644, "root", "root", test=False)

    assert predicted == done and done["updated"] == ["type"]
    assert (
        not target.is_symlink()
        and target.read_text() == "new\n"
        and elsewhere.read_text() == "not ours\n"
    )
    assert again == {} and untouched  # nothing differed: not even rewritten
    assert mode_only["updated"] == ["mode"] and stat.S_IMODE(target.stat().st_mode) == 0o644


def test_an_environment_file_reports_each_variable_change_and_goes_when_empty(tmp_path):
    path = str(tmp_path / "environment.d" / "90-workstation-licenses.conf")

    created = ensure_environment_file(
        path, {"foundry_LICENSE": "4101@rlm1"}, "environment.d", test=False
    )
    first_inode = os.stat(path).st_ino
    same = ensure_environment_file(
        path, {"foundry_LICENSE": "4101@rlm1"}, "environment.d", test=False
    )
    moved = ensure_environment_file(
        path, {"foundry_LICENSE": "4101@rlm2"}, "environment.d", test=False
    )
    moved_inode = os.stat(path).st_ino
    predicted_removal = ensure_environment_file(path, {}, "environment.d", test=True)
    removed = ensure_environment_file(path, {}, "environment.d", test=False)

    assert created["created"] is True and created["variables"] == {
        "foundry_LICENSE": {"old": None, "new": "4101@rlm1"}
    }
    assert same == {}
    assert moved["updated"] == ["content"] and moved["variables"] == {
        "foundry_LICENSE": {"old": "4101@rlm1", "new": "4101@rlm2"}
    }
    assert (
        predicted_removal
        == removed
        == {
            "path": path,
            "removed": True,
            "variables": {"foundry_LICENSE": {"old": "4101@rlm2", "new": None}},
        }
    )
    assert not os.path.exists(path)
    assert (
        moved_inode != first_inode
    )  # a server change lands as a new file, renamed over the old one


LISTING = [
    {
        "feature_id": "MAYA",
        "def_prod_key": "657Q1",
        "def_prod_ver": "2025.0.0.F",
        "sel_prod_key": "657Q1",
        "sel_prod_ver": "2025.0.0.F",
        "lic_method": 1,
        "lic_server_type": 1,
        "lic_servers": ["lic1"],
    }
]


@pytest.mark.parametrize(
    ("listing", "servers", "expected"),
    [
        (LISTING, ["lic1"], "registered"),
        (LISTING, ["lic2"], "different"),
        (
            [{**LISTING[0], "lic_method": 2, "lic_servers": [""]}],
            ["lic1"],
            "different",
        ),  # standalone today
        (
            [{**LISTING[0], "sel_prod_ver": "2024.0.0.F", "def_prod_ver": "2024.0.0.F"}],
            ["lic1"],
            "absent",
        ),
        ([], ["lic1"], "absent"),
    ],
)
def test_the_helper_listing_says_whether_a_product_is_registered_as_wanted(
    listing, servers, expected
):
    assert (
        status.autodesk_registration(json.dumps(listing), "657Q1", "2025.0.0.F", servers, "SINGLE")
        == expected
    )


def test_helper_command_lines_and_errors_never_carry_the_key_back(tmp_path):
    register = effects.autodesk_argv(
        "/h",
        "register",
        "657Q1",
        "2025.0.0.F",
        ["a", "b", "c"],
        "REDUNDANT",
        "/var/opt/Autodesk/Adlm/Maya2025/MayaConfig.pit",
    )
    change = effects.autodesk_argv("/h", "change", "657Q1", "2025.0.0.F", ["lic1"], "SINGLE")
    helper = tmp_path / "AdskLicensingInstHelper"
    helper.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stderr.write('bad key ' + sys.argv[3])\nsys.exit(3)\n"
    )
    helper.chmod(0o755)

    with pytest.raises(WorkstationError) as failure:
        effects.run_helper(
            [str(helper), "register", "--prod_key", CANARY_KEY], 10, secrets=[CANARY_KEY]
        )

    assert register == [
        "/h",
        "register",
        "--prod_key",
        "657Q1",
        "--prod_ver",
        "2025.0.0.F",
        "--eula_locale",
        "US",
        "--config_file",
        "/var/opt/Autodesk/Adlm/Maya2025/MayaConfig.pit",
        "--lic_method",
        "NETWORK",
        "--lic_server_type",
        "REDUNDANT",
        "--lic_servers",
        "a,b,c",
    ]
    assert change[1] == "change" and "--config_file" not in change and change[-1] == "lic1"
    assert "exit code 3" in str(failure.value) and "bad key <secret>" in str(failure.value)
    assert CANARY_KEY not in str(failure.value)
    with pytest.raises(WorkstationError, match="not at /nowhere"):
        effects.run_helper(["/nowhere/AdskLicensingInstHelper", "list"], 10)


# --------------------------------------------------------------------------- a stand-in AdskLicensingInstHelper

# Keeps its registrations in registry.json beside itself and appends each command line to
# calls.jsonl, answering `list`, `register` and `change` with the real helper's options and
# JSON shape (lic_method 1 = NETWORK, lic_server_type 1/2/3 = SINGLE/REDUNDANT/DISTRIBUTED).
AUTODESK_HELPER = """#!{python}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
registry, calls = os.path.join(here, "registry.json"), os.path.join(here, "calls.jsonl")
products = json.load(open(registry)) if os.path.exists(registry) else []
command, options = sys.argv[1], dict(zip(sys.argv[2::2], sys.argv[3::2]))
with open(calls, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if command == "list":
    print(json.dumps(products, indent=2))
    sys.exit(0)
key, version = options["--prod_key"], options["--prod_ver"]
found = [p for p in products if p["sel_prod_key"] == key and p["sel_prod_ver"] == version]
if (command == "register") == bool(found):
    sys.stderr.write("product %s %s is %s registered\\n" % (key, version, "already" if found else "not"))
    sys.exit(4)
if command == "register":
    found = [dict(feature_id="MAYA", def_prod_key=key, def_prod_ver=version, sel_prod_key=key, sel_prod_ver=version)]
    products.append(found[0])
found[0].update(lic_method={{"NETWORK": 1, "STANDALONE": 2, "USER": 4}}[options["--lic_method"]],
                lic_server_type={{"SINGLE": 1, "REDUNDANT": 2, "DISTRIBUTED": 3}}[options["--lic_server_type"]],
                lic_servers=options["--lic_servers"].split(","))
json.dump(products, open(registry, "w"))
"""


def write_autodesk_helper(folder: Path, products=()) -> Path:
    """The stand-in helper in `folder` (its registry starts with `products`); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    helper = folder / "AdskLicensingInstHelper"
    helper.write_text(AUTODESK_HELPER.format(python=sys.executable))
    helper.chmod(0o755)
    if products:
        (folder / "registry.json").write_text(json.dumps(list(products)))
    return helper


def helper_calls(helper: Path) -> list[list[str]]:
    calls = helper.parent / "calls.jsonl"
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def test_the_stand_in_helper_registers_then_lists_the_way_the_checks_read_it(tmp_path):
    helper = write_autodesk_helper(tmp_path / "helper")
    argv = effects.autodesk_argv(str(helper), "register", "657Q1", "2025.0.0.F", ["lic1"], "SINGLE")

    before = effects.run_helper([str(helper), "list"], 10)
    effects.run_helper(argv, 10)
    after = effects.run_helper([str(helper), "list"], 10)

    assert (
        status.autodesk_registration(before, "657Q1", "2025.0.0.F", ["lic1"], "SINGLE") == "absent"
    )
    assert (
        status.autodesk_registration(after, "657Q1", "2025.0.0.F", ["lic1"], "SINGLE")
        == "registered"
    )
    assert [call[0] for call in helper_calls(helper)] == ["list", "register", "list"]


# --------------------------------------------------------------------------- loopback license servers


@dataclass
class LoopbackPorts:
    accepting: int  # a listener: connections complete
    closed: int  # bound but not listening: the kernel refuses
    silent: int  # listening with a full backlog: SYNs are dropped, connections never complete


@contextlib.contextmanager
def loopback_license_servers():
    """Three loopback ports that answer the way license servers do when up, down, and hung."""
    held = []

    def bound():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        held.append(sock)
        return sock

    accepting, closed, silent = bound(), bound(), bound()
    accepting.listen(64)
    silent.listen(0)  # room for one queued connection, which the filler takes
    filler = socket.create_connection(silent.getsockname(), timeout=2)
    held.append(filler)
    try:
        yield LoopbackPorts(*(sock.getsockname()[1] for sock in (accepting, closed, silent)))
    finally:
        for sock in held:
            sock.close()


def test_probes_tell_up_down_hung_and_unknown_servers_apart():
    with loopback_license_servers() as ports:
        started = time.monotonic()
        statuses = status.probe_all(
            [
                ("up", licenses_contract.Server("up", "127.0.0.1", ports.accepting)),
                ("down", licenses_contract.Server("down", "127.0.0.1", ports.closed)),
                ("hung", licenses_contract.Server("hung", "127.0.0.1", ports.silent)),
                ("hung too", licenses_contract.Server("hung too", "127.0.0.1", ports.silent)),
                ("unknown", licenses_contract.Server("unknown", "rlm.studio.invalid", 4101)),
                ("malformed", None),
            ],
            timeout=0.5,
        )
        elapsed = time.monotonic() - started

    assert statuses == ["ok", "refused", "timeout", "timeout", "unresolved", "invalid"]
    assert elapsed < 1.5, "the probes did not run in parallel"


def test_reachability_reports_per_license_and_server():
    with loopback_license_servers() as ports:
        section = {
            "foundry": {
                "type": "rlm",
                "isv": "foundry",
                "servers": [f"{ports.accepting}@127.0.0.1", f"{ports.closed}@localhost"],
            },
            "houdini": {"type": "sidefx", "servers": [f"127.0.0.1:{ports.accepting}"]},
            "node": {"type": "nodelocked", "path": "/opt/k.lic", "content": CANARY_CONTENT},
            "broken": {"type": "rlm", "servers": ["4101rlm"]},
        }
        report = status.reachability(section, 0.5)

    assert report["ok"] is False
    assert report["servers"] == {
        "foundry": {f"{ports.accepting}@127.0.0.1": "ok", f"{ports.closed}@localhost": "refused"},
        "houdini": {f"127.0.0.1:{ports.accepting}": "ok"},
        "broken": {"(malformed)": "invalid"},
    }
    assert CANARY_CONTENT not in json.dumps(report)


def test_the_plan_carries_pillar_paths_of_secrets_never_the_secrets(tmp_path):
    cfg = merged(lookup={"os": {"licenses": {"root": str(tmp_path)}}})

    data = licenses_plan.desired(cfg)

    text = json.dumps(data)
    assert CANARY_CONTENT not in text and CANARY_KEY not in text
    assert data["errors"] == []
    files = {item["name"]: item for item in data["vendor_files"] + data["license_files"]}
    registrations = {item["name"]: item for item in data["registrations"]}
    environment = {item["scope"]: item for item in data["environment_files"]}
    assert files["katana-node"]["content_pillar"] == "workstation:licenses:katana-node:content"
    assert files["katana-node"]["path"] == str(tmp_path / "opt/studio/licenses/katana.lic")
    assert (files["katana-node"]["mode"], files["katana-node"]["group"]) == ("0640", "artists")
    assert (
        registrations["maya2025"]["product_key_pillar"]
        == "workstation:licenses:maya2025:product_key"
    )
    assert environment["profile"] == {
        "scope": "profile",
        "style": "profile",
        "path": str(tmp_path / "etc/profile.d/workstation-licenses.sh"),
    }
    assert environment["session"]["path"] == str(
        tmp_path / "etc/environment.d/90-workstation-licenses.conf"
    )
    assert files["vray"]["path"] == str(tmp_path / "etc/chaos/vrlclient.xml")
    assert files["vray"]["contents"] == licenses_plan.render_vrlclient(SECTION["vray"])
    assert Path(files["houdini"]["path"]).is_relative_to(tmp_path)
    assert (
        data["variables"]["VRAY_AUTH_CLIENT_FILE_PATH"] == "/etc/chaos"
    )  # what the running machine sees
    bad_root = licenses_plan.desired(merged(lookup={"os": {"licenses": {"root": "not/absolute"}}}))
    assert "workstation:os:licenses:root: must be an absolute path" in "\n".join(bad_root["errors"])
    assert (
        bad_root["environment_files"] == bad_root["vendor_files"] == bad_root["license_files"] == []
    )


def test_an_entry_with_an_error_or_a_clash_is_left_out_and_the_others_still_converge():
    section = {
        **SECTION,
        "houdini-farm": {"type": "sidefx", "servers": ["farm1"]},
        "foundry": {"type": "rlm", "isv": "foundry", "servers": ["4101@rlm1", "99999@rlm2"]},
    }

    data = licenses_plan.desired(merged(section))

    errors = "\n".join(data["errors"])
    assert "workstation:licenses:foundry:servers:1: port '99999'" in errors
    assert (
        "workstation:licenses:houdini-farm: a second sidefx entry; workstation:licenses:houdini already"
        in errors
    )
    assert [item["name"] for item in data["vendor_files"]] == [
        "houdini",
        "vray",
    ]  # houdini-farm does not overwrite it
    assert (
        "foundry_LICENSE" not in data["variables"]
        and data["variables"]["SESI_LMHOST"] == "sesi1;sesi2:1715"
    )
    assert [item["name"] for item in data["registrations"]] == ["maya2025"]


def test_an_autodesk_registration_waits_for_the_installs_of_the_apps_that_need_it():
    hash_ = "sha256:" + "ab" * 32
    catalog = {
        "maya": {
            "versions": {"2025.3": {"source": "m.tgz", "hash": hash_, "licenses": ["maya2025"]}}
        }
    }
    productions = {"nightfall": {"apps": {"maya": "2025.3"}}}

    data = licenses_plan.desired(merged(catalog=catalog, productions=productions))
    baked = licenses_plan.desired(merged(catalog=catalog, productions=productions, phase="bake"))

    assert [(item["name"], item["installs"]) for item in data["registrations"]] == [
        ("maya2025", ["workstation-app-maya-2025.3"])
    ]
    assert data["requires_apps"] is True and data["register_now"] is True
    assert not any("installs" in item for item in data["license_files"] + data["vendor_files"])
    assert (
        baked["register_now"] is False and baked["requires_apps"] is False
    )  # an image bake registers nothing


def test_state_arguments_for_an_environment_file_are_checked_before_anything_is_written():
    assert (
        licenses_plan.check_environment(
            {"foundry_LICENSE": "4101@rlm1:4101@rlm2", "SESI_LMHOST": "a;b"}, "environment.d"
        )
        == []
    )
    assert licenses_plan.check_environment({"X": "a b"}, "profile") != []
    assert licenses_plan.check_environment({"X": "$HOME"}, "profile") != []
    assert licenses_plan.check_environment({"1X": "a"}, "profile") != []
    assert (
        "style must be one of profile, environment.d"
        in licenses_plan.check_environment({}, "bash")[0]
    )


@pytest.mark.parametrize("name", ["..", ".", "a/b"])
def test_a_license_name_that_is_not_one_file_name_is_reported_at_its_path(name):
    found = issues_of({name: {"type": "rlm", "servers": ["5053@rlm1"]}})

    assert "folder and file names" in found[f"workstation:licenses:{name}"], found


def test_a_folder_where_a_license_file_belongs_is_refused_with_what_to_do(tmp_path):
    target = tmp_path / "katana.lic"
    (target / "kept").mkdir(parents=True)

    with pytest.raises(
        WorkstationError, match=f"{target} is a folder; remove it so the file can be written"
    ):
        ensure_file(str(target), b"LICENSE\n", 0o600, "root", "root", test=False)
    assert (target / "kept").is_dir()


def test_an_environment_file_that_is_a_link_is_replaced_and_never_read_through(tmp_path):
    path = tmp_path / "90-workstation-licenses.conf"
    elsewhere = tmp_path / "elsewhere.env"
    elsewhere.write_text("DATABASE_PASSWORD=hunter2\n")
    path.symlink_to(elsewhere)

    changes = ensure_environment_file(
        str(path), {"foundry_LICENSE": "4101@rlm1"}, "environment.d", test=False
    )

    assert "hunter2" not in json.dumps(changes)
    assert changes["variables"] == {"foundry_LICENSE": {"old": None, "new": "4101@rlm1"}}
    assert not path.is_symlink() and elsewhere.read_text() == "DATABASE_PASSWORD=hunter2\n"


@needs_root
def test_a_full_disk_while_writing_a_license_file_is_a_disk_error_naming_the_folder(tmp_path):
    """Before: the bare OSError (Errno 28) reached the state, naming neither the folder nor the shortfall."""
    with small_tmpfs(tmp_path / "small", "64k") as small:
        folder = small / "licenses"

        with pytest.raises(DiskError, match=f"^disk full under {folder}: .* more needed$"):
            ensure_file(
                str(folder / "katana.lic"),
                os.urandom(256 * 1024),
                0o600,
                "root",
                "root",
                test=False,
            )

        assert list(folder.iterdir()) == []  # nothing half-written, no temporary left behind
