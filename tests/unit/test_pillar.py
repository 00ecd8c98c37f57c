"""The pillar contract: every problem is reported with its exact pillar path and a message that says what to do."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from salt_workstation import config, contract, pillar

HASH = "sha256:" + "ab" * 32
HASH512 = "sha512:" + "cd" * 64
GRAINS = {"os_family": "Debian", "oscodename": "bookworm"}


def pillar_yaml(text: str) -> dict:
    """The merged config for a pillar written as YAML, the way an admin writes it."""
    return config.load(yaml.safe_load(textwrap.dedent(text))["workstation"], GRAINS)


def base() -> dict:
    """A valid pillar (as a dict) that single tests break in one place."""
    return {
        "install_root": "/opt/studio",
        "depot": "salt://depot",
        "retain": 1,
        "catalog": {
            "nuke": {
                "name": "Nuke",
                "versions": {
                    "15.1v3": {
                        "source": "nuke/Nuke15.1v3.tgz",
                        "hash": HASH,
                        "strip_components": 1,
                        "launchers": {"nuke": "Nuke15.1"},
                        "env": {"FOUNDRY_LICENSE": "4101@lic"},
                    },
                    "2025.10": {"source": "nuke/Nuke2025.10.tgz", "hash": HASH512},
                },
            },
            "blender": {
                "versions": {"4.2.1": {"source": "blender/blender-4.2.1.tar.xz", "hash": HASH}}
            },
        },
        "productions": {
            "show-a": {"apps": {"nuke": "15.1v3", "blender": "4.2.1"}},
            "show-b": {"apps": {"nuke": "2025.10"}},
        },
    }


def issues_of(workstation: dict) -> list[pillar.Issue]:
    return contract.validate(config.load(workstation, GRAINS))


def by_path(issues) -> dict:
    result: dict = {}
    for issue in issues:
        result.setdefault(issue.path, []).append(issue.message)
    return result


def only_issue(issues, path) -> str:
    """The single issue; it must sit at exactly `path`."""
    assert [issue.path for issue in issues] == [path], [str(issue) for issue in issues]
    return issues[0].message


def version_spec(cfg, app, version):
    return cfg["catalog"][app]["versions"][version]


def test_base_pillar_is_valid():
    assert issues_of(base()) == []


def test_defaults_alone_are_valid():
    assert issues_of({}) == []


# ---- versions as numbers --------------------------------------------------------------


def test_unquoted_production_version_read_as_float_says_quote_it():
    cfg = pillar_yaml(
        """
        workstation:
          catalog:
            nuke:
              versions:
                "2025.10": {source: nuke/n.tgz, hash: "sha256:%s"}
          productions:
            show-a:
              apps:
                nuke: 2025.10
        """
        % ("0" * 64)
    )
    assert cfg["productions"]["show-a"]["apps"]["nuke"] == 2025.1  # what YAML really did
    issues = contract.validate(cfg)
    messages = by_path(issues)
    assert list(messages) == ["workstation:productions:show-a:apps:nuke"]
    text = " ".join(messages["workstation:productions:show-a:apps:nuke"])
    assert "quote it" in text
    assert "2025.1" in text and "number" in text
    # the catalog's 2025.10 reads as the same number: it is named as the value meant
    assert 'quote it, e.g. "2025.10" (the catalog\'s version that reads as that number)' in text
    # and since 2025.1 is not 2025.10, it also says which versions the catalog does have
    assert "known: 2025.10" in text
    assert {issue.app for issue in issues} == {"nuke"}
    assert {issue.version for issue in issues} == {"2025.1"}


def test_unquoted_catalog_version_key_read_as_float():
    cfg = pillar_yaml(
        """
        workstation:
          catalog:
            houdini:
              versions:
                20.50: {source: houdini/h.tgz, hash: "sha256:%s"}
        """
        % ("0" * 64)
    )
    issues = contract.validate(cfg)
    message = only_issue(issues, "workstation:catalog:houdini:versions:20.5")
    assert "quote it" in message and "20.5" in message
    # nothing says which was meant: the message says what YAML made of it and what it may have been
    assert "already turned it into 20.5" in message and '"20.50" if you wrote 20.50' in message
    assert issues[0].app == "houdini" and issues[0].version == "20.5"


def test_integer_production_version_is_refused_too():
    workstation = base()
    workstation["catalog"]["blender"]["versions"]["4"] = {"source": "blender/b4.tgz", "hash": HASH}
    workstation["productions"]["show-a"]["apps"]["blender"] = 4
    message = only_issue(issues_of(workstation), "workstation:productions:show-a:apps:blender")
    assert "quote it" in message


def test_version_with_a_slash_is_refused():
    workstation = base()
    workstation["catalog"]["nuke"]["versions"]["15/1"] = {"source": "nuke/x.tgz", "hash": HASH}
    message = only_issue(issues_of(workstation), "workstation:catalog:nuke:versions:15/1")
    assert "letters, digits" in message


# ---- hashes ----------------------------------------------------------------------------


def test_missing_hash_names_the_exact_path():
    workstation = base()
    del workstation["catalog"]["nuke"]["versions"]["15.1v3"]["hash"]
    message = only_issue(issues_of(workstation), "workstation:catalog:nuke:versions:15.1v3:hash")
    assert "required" in message and "sha256" in message


@pytest.mark.parametrize(
    ("value", "expect"),
    [
        ("sha256:" + "a" * 63, "64 hex characters, got 63"),
        ("sha256:" + "a" * 65, "64 hex characters, got 65"),
        ("sha512:" + "a" * 64, "128 hex characters, got 64"),
        ("sha256:" + "g" * 64, "64 hex characters"),
        ("md5:" + "a" * 32, "algorithm 'md5' is not supported; use one of sha256, sha512"),
        ("a" * 64, "is required as '<algorithm>:<hex digest>'"),
        (None, "is required"),
        (12345, "is required"),
    ],
)
def test_malformed_hash(value, expect):
    workstation = base()
    workstation["catalog"]["nuke"]["versions"]["15.1v3"]["hash"] = value
    issues = issues_of(workstation)
    message = only_issue(issues, "workstation:catalog:nuke:versions:15.1v3:hash")
    assert expect in message
    assert (issues[0].app, issues[0].version) == ("nuke", "15.1v3")


def test_upper_case_hex_is_accepted_and_normalised():
    workstation = base()
    workstation["catalog"]["nuke"]["versions"]["15.1v3"]["hash"] = "sha256:" + "AB" * 32
    cfg = config.load(workstation, GRAINS)
    assert contract.validate(cfg) == []
    spec = pillar.resolve_spec("nuke", "15.1v3", version_spec(cfg, "nuke", "15.1v3"), cfg["depot"])
    assert spec.hash == "sha256:" + "ab" * 32
    assert (spec.hash_algorithm, spec.hash_hex) == ("sha256", "ab" * 32)


# ---- kinds and keys --------------------------------------------------------------------


def test_unknown_kind():
    workstation = base()
    workstation["catalog"]["nuke"]["versions"]["15.1v3"]["kind"] = "tarball"
    message = only_issue(issues_of(workstation), "workstation:catalog:nuke:versions:15.1v3:kind")
    assert message == "unknown kind 'tarball'; use one of archive, installer, packages"


def test_misspelt_key_gets_did_you_mean():
    workstation = base()
    spec = workstation["catalog"]["nuke"]["versions"]["15.1v3"]
    spec["hsah"] = spec.pop("hash")
    found = by_path(issues_of(workstation))
    assert set(found) == {
        "workstation:catalog:nuke:versions:15.1v3:hsah",
        "workstation:catalog:nuke:versions:15.1v3:hash",
    }
    assert found["workstation:catalog:nuke:versions:15.1v3:hsah"] == [
        "unknown key; did you mean 'hash'?"
    ]
    assert "required" in found["workstation:catalog:nuke:versions:15.1v3:hash"][0]


def test_unknown_key_without_a_close_match_lists_the_known_keys():
    workstation = base()
    workstation["catalog"]["blender"]["versions"]["4.2.1"]["zzz"] = 1
    message = only_issue(issues_of(workstation), "workstation:catalog:blender:versions:4.2.1:zzz")
    assert message.startswith("unknown key; known keys: source, hash, strip_components")


def test_key_of_another_kind_does_not_apply():
    workstation = base()
    workstation["catalog"]["blender"]["versions"]["4.2.1"]["packages"] = {"blender": "4.2.1-1"}
    message = only_issue(
        issues_of(workstation), "workstation:catalog:blender:versions:4.2.1:packages"
    )
    assert message == "does not apply to kind 'archive'; remove it"


def test_misspelt_top_level_app_and_production_keys():
    workstation = base()
    workstation["retian"] = 2
    workstation["catalog"]["nuke"]["verisons"] = {}
    workstation["productions"]["show-b"]["aps"] = {}
    found = by_path(issues_of(workstation))
    assert found == {
        "workstation:retian": ["unknown key; did you mean 'retain'?"],
        "workstation:catalog:nuke:verisons": ["unknown key; did you mean 'versions'?"],
        "workstation:productions:show-b:aps": ["unknown key; did you mean 'apps'?"],
    }


def test_source_problems():
    workstation = base()
    versions = workstation["catalog"]["nuke"]["versions"]
    versions["15.1v3"]["source"] = "ftp://depot/nuke.tgz"
    versions["2025.10"]["source"] = "../../etc/shadow"
    found = by_path(issues_of(workstation))
    assert set(found) == {
        "workstation:catalog:nuke:versions:15.1v3:source",
        "workstation:catalog:nuke:versions:2025.10:source",
    }
    assert "unsupported URL scheme" in found["workstation:catalog:nuke:versions:15.1v3:source"][0]
    assert "'..'" in found["workstation:catalog:nuke:versions:2025.10:source"][0]


def test_missing_source():
    workstation = base()
    del workstation["catalog"]["blender"]["versions"]["4.2.1"]["source"]
    message = only_issue(
        issues_of(workstation), "workstation:catalog:blender:versions:4.2.1:source"
    )
    assert "required" in message


@pytest.mark.parametrize("value", [-1, True, "1", 1.5])
def test_strip_components_must_be_a_whole_number(value):
    workstation = base()
    workstation["catalog"]["blender"]["versions"]["4.2.1"]["strip_components"] = value
    only_issue(
        issues_of(workstation), "workstation:catalog:blender:versions:4.2.1:strip_components"
    )


# ---- productions -----------------------------------------------------------------------


def test_production_names_an_app_not_in_the_catalog():
    workstation = base()
    workstation["productions"]["show-b"]["apps"]["maya"] = "2025"
    issues = issues_of(workstation)
    message = only_issue(issues, "workstation:productions:show-b:apps:maya")
    assert "app 'maya' is not in workstation:catalog" in message
    assert "(catalog has: blender, nuke)" in message
    assert (issues[0].app, issues[0].version) == ("maya", "2025")


def test_production_names_a_version_not_in_the_catalog_lists_known_versions():
    workstation = base()
    workstation["productions"]["show-b"]["apps"]["nuke"] = "16.0v1"
    message = only_issue(issues_of(workstation), "workstation:productions:show-b:apps:nuke")
    assert "nuke 16.0v1 is not in workstation:catalog:nuke:versions" in message
    assert "(known: 15.1v3, 2025.10)" in message


def test_bad_production_name_and_shape():
    workstation = base()
    workstation["productions"]["Show A"] = {"apps": {}}
    workstation["productions"]["show-c"] = ["nuke"]
    workstation["productions"]["show-d"] = {"apps": ["nuke"]}
    found = by_path(issues_of(workstation))
    assert set(found) == {
        "workstation:productions:Show A",
        "workstation:productions:show-c",
        "workstation:productions:show-d:apps",
    }


# ---- machine-wide settings -------------------------------------------------------------


@pytest.mark.parametrize("root", ["opt/studio", "", None, 5])
def test_install_root_must_be_absolute(root):
    workstation = base()
    workstation["install_root"] = root
    message = only_issue(issues_of(workstation), "workstation:install_root")
    assert "must be an absolute path" in message


@pytest.mark.parametrize(
    "root", ["/", "/usr", "/usr/", "/opt", "/home", "/etc", "/usr/local", "/opt/studio/.."]
)
def test_install_root_may_not_be_a_system_folder(root):
    workstation = base()
    workstation["install_root"] = root
    message = only_issue(issues_of(workstation), "workstation:install_root")
    assert "is a system folder" in message


def test_install_root_of_its_own_is_fine():
    workstation = base()
    workstation["install_root"] = "/opt/studio/apps-2025"
    assert issues_of(workstation) == []


@pytest.mark.parametrize("depot", ["ftp://depot/dcc", "depot/dcc", "smb://nas/dcc", None, ""])
def test_depot_bad_scheme(depot):
    workstation = base()
    workstation["depot"] = depot
    message = only_issue(issues_of(workstation), "workstation:depot")
    assert "salt://, http(s)://, file:// URL or an absolute path" in message


@pytest.mark.parametrize(
    "depot",
    ["salt://depot", "http://depot.studio/dcc", "https://depot/dcc", "file:///srv/dcc", "/srv/dcc"],
)
def test_depot_good(depot):
    workstation = base()
    workstation["depot"] = depot
    assert issues_of(workstation) == []


@pytest.mark.parametrize("retain", [-1, True, False, "2", 1.0, None])
def test_retain_must_be_a_whole_number(retain):
    workstation = base()
    workstation["retain"] = retain
    message = only_issue(issues_of(workstation), "workstation:retain")
    assert "whole number" in message


def test_retain_zero_is_fine():
    workstation = base()
    workstation["retain"] = 0
    assert issues_of(workstation) == []


# ---- installer and packages kinds ------------------------------------------------------


def installer_pillar(installer) -> dict:
    workstation = base()
    workstation["catalog"]["houdini"] = {
        "versions": {
            "20.5.332": {
                "kind": "installer",
                "source": "houdini/h.tgz",
                "hash": HASH,
                "installer": installer,
            }
        }
    }
    return workstation


def test_installer_valid():
    assert (
        issues_of(
            installer_pillar(
                {"command": ["./houdini.install", "--prefix", "{dest}"], "timeout": 600}
            )
        )
        == []
    )


def test_installer_command_must_pass_dest():
    message = only_issue(
        issues_of(installer_pillar({"command": ["./houdini.install", "--prefix", "/opt/hfs"]})),
        "workstation:catalog:houdini:versions:20.5.332:installer:command",
    )
    assert "{dest}" in message


@pytest.mark.parametrize("command", ["./install.sh {dest}", [], ["./install.sh", 5], None])
def test_installer_command_must_be_an_argv_list(command):
    message = only_issue(
        issues_of(installer_pillar({"command": command})),
        "workstation:catalog:houdini:versions:20.5.332:installer:command",
    )
    assert "list of arguments" in message


def test_installer_section_required_and_checked():
    found = by_path(issues_of(installer_pillar(None)))
    assert list(found) == ["workstation:catalog:houdini:versions:20.5.332:installer"]
    found = by_path(
        issues_of(installer_pillar({"command": ["./i", "{dest}"], "timeout": 0, "tiemout": 5}))
    )
    assert set(found) == {
        "workstation:catalog:houdini:versions:20.5.332:installer:timeout",
        "workstation:catalog:houdini:versions:20.5.332:installer:tiemout",
    }
    assert found["workstation:catalog:houdini:versions:20.5.332:installer:tiemout"] == [
        "unknown key; did you mean 'timeout'?"
    ]


def packages_pillar(packages) -> dict:
    workstation = base()
    workstation["catalog"]["krita"] = {
        "versions": {
            "5.2.2": {
                "kind": "packages",
                "packages": packages,
                "launchers": {"krita": "/usr/bin/krita"},
            }
        }
    }
    return workstation


def test_packages_kind_valid_and_needs_no_hash():
    assert issues_of(packages_pillar({"krita": "1:5.2.2+dfsg-2"})) == []


@pytest.mark.parametrize("pinned", [5.2, None, "", 5])
def test_packages_need_pinned_string_versions(pinned):
    message = only_issue(
        issues_of(packages_pillar({"krita": pinned})),
        "workstation:catalog:krita:versions:5.2.2:packages:krita",
    )
    assert "quoted string" in message


@pytest.mark.parametrize("packages", [None, {}, ["krita"]])
def test_packages_mapping_required(packages):
    only_issue(
        issues_of(packages_pillar(packages)), "workstation:catalog:krita:versions:5.2.2:packages"
    )


def test_packages_kind_refuses_source_and_hash():
    workstation = packages_pillar({"krita": "5.2.2"})
    workstation["catalog"]["krita"]["versions"]["5.2.2"]["hash"] = HASH
    message = only_issue(issues_of(workstation), "workstation:catalog:krita:versions:5.2.2:hash")
    assert "does not apply to kind 'packages'" in message


# ---- launchers and env -----------------------------------------------------------------


@pytest.mark.parametrize("target", ["../bin/nuke", "bin/../../nuke", "/usr/bin/nuke", ""])
def test_launchers_must_stay_inside_the_version_folder(target):
    workstation = base()
    workstation["catalog"]["nuke"]["versions"]["15.1v3"]["launchers"] = {"nuke": target}
    message = only_issue(
        issues_of(workstation), "workstation:catalog:nuke:versions:15.1v3:launchers:nuke"
    )
    assert "inside the version folder" in message


def test_launcher_command_name_and_env_problems():
    workstation = base()
    spec = workstation["catalog"]["nuke"]["versions"]["15.1v3"]
    spec["launchers"] = {"nuke x": "Nuke15.1"}
    spec["env"] = {"BAD-NAME": "x", "NUKE_PORT": 4101}
    found = by_path(issues_of(workstation))
    assert set(found) == {
        "workstation:catalog:nuke:versions:15.1v3:launchers:nuke x",
        "workstation:catalog:nuke:versions:15.1v3:env:BAD-NAME",
        "workstation:catalog:nuke:versions:15.1v3:env:NUKE_PORT",
    }
    assert "quote it" in found["workstation:catalog:nuke:versions:15.1v3:env:NUKE_PORT"][0]


def test_every_issue_renders_as_path_colon_message():
    workstation = base()
    del workstation["catalog"]["nuke"]["versions"]["15.1v3"]["hash"]
    workstation["depot"] = "ftp://x"
    issues = issues_of(workstation)
    assert sorted(str(issue) for issue in issues) == sorted(
        f"{i.path}: {i.message}" for i in issues
    )
    assert all(
        issue.as_dict() == {"path": issue.path, "message": issue.message} for issue in issues
    )
    assert all(issue.path.startswith("workstation:") for issue in issues)


def test_not_a_mapping():
    assert [str(issue) for issue in contract.validate(["x"])] == [
        "workstation: must be a mapping, got list"
    ]


# ---- wanted versions -------------------------------------------------------------------


def test_wanted_versions_share_one_entry_per_version():
    workstation = base()
    workstation["productions"]["show-c"] = {"apps": {"nuke": "15.1v3"}}
    wanted = pillar.wanted_versions(config.load(workstation, GRAINS))
    assert [(w.app, w.version) for w in wanted] == [
        ("blender", "4.2.1"),
        ("nuke", "15.1v3"),
        ("nuke", "2025.10"),
    ]
    nuke = wanted[1]
    assert nuke.used_by == [
        "workstation:productions:show-a:apps:nuke",
        "workstation:productions:show-c:apps:nuke",
    ]
    assert nuke.state_id == "workstation-app-nuke-15.1v3"
    assert nuke.spec["source"] == "nuke/Nuke15.1v3.tgz"
    assert pillar.wanted_by_app(config.load(workstation, GRAINS)) == {
        "blender": ["4.2.1"],
        "nuke": ["15.1v3", "2025.10"],
    }


# ---- resolve_source --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "depot", "url"),
    [
        ("nuke/Nuke15.1v3.tgz", "salt://depot", "salt://depot/nuke/Nuke15.1v3.tgz"),
        ("nuke/Nuke15.1v3.tgz", "salt://depot/", "salt://depot/nuke/Nuke15.1v3.tgz"),
        (
            "nuke/Nuke15.1v3.tgz",
            "http://depot.studio:8080/dcc",
            "http://depot.studio:8080/dcc/nuke/Nuke15.1v3.tgz",
        ),
        (
            "nuke/Nuke15.1v3.tgz",
            "https://depot.studio/dcc/",
            "https://depot.studio/dcc/nuke/Nuke15.1v3.tgz",
        ),
        ("nuke/Nuke15.1v3.tgz", "file:///srv/depot", "file:///srv/depot/nuke/Nuke15.1v3.tgz"),
        ("nuke/Nuke15.1v3.tgz", "/srv/depot", "file:///srv/depot/nuke/Nuke15.1v3.tgz"),
        ("nuke/Nuke15.1v3.tgz", "/srv/depot/", "file:///srv/depot/nuke/Nuke15.1v3.tgz"),
        ("https://vendor.example/nuke.tgz", "salt://depot", "https://vendor.example/nuke.tgz"),
        ("salt://elsewhere/nuke.tgz", "http://depot", "salt://elsewhere/nuke.tgz"),
        ("file:///mnt/nas/nuke.tgz", "salt://depot", "file:///mnt/nas/nuke.tgz"),
        ("/mnt/nas/nuke.tgz", "salt://depot", "file:///mnt/nas/nuke.tgz"),
        ("/mnt/nas/nuke.tgz", "http://depot", "file:///mnt/nas/nuke.tgz"),
    ],
)
def test_resolve_source(source, depot, url):
    assert pillar.resolve_source(source, depot) == url


def test_resolve_spec_fills_defaults():
    cfg = config.load(base(), GRAINS)
    spec = pillar.resolve_spec(
        "blender", "4.2.1", version_spec(cfg, "blender", "4.2.1"), "http://depot/dcc"
    )
    assert spec == pillar.VersionSpec(
        app="blender",
        version="4.2.1",
        kind="archive",
        source="http://depot/dcc/blender/blender-4.2.1.tar.xz",
        hash=HASH,
        strip_components=0,
        launchers={},
        env={},
        installer=None,
        packages={},
    )
    installer = pillar.resolve_spec(
        "houdini",
        "20.5",
        {
            "kind": "installer",
            "source": "h.tgz",
            "hash": HASH,
            "installer": {"command": ["./i", "{dest}"]},
        },
        "salt://depot",
    )
    assert installer.installer == {
        "command": ["./i", "{dest}"],
        "timeout": pillar.DEFAULT_INSTALLER_TIMEOUT,
    }
    packages = pillar.resolve_spec(
        "krita", "5", {"kind": "packages", "packages": {"krita": "5.2"}}, "salt://depot"
    )
    assert (packages.source, packages.hash, packages.packages) == (None, None, {"krita": "5.2"})
