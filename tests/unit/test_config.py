"""config.load: defaults.yaml, then the OS family layer, then workstation:lookup, then the pillar."""

from __future__ import annotations

from pathlib import Path

import yaml

from salt_workstation import FORMULA_DIR, config, contract, gpu_detect
from salt_workstation import plan as ws_plan
from salt_workstation.display import plan as display_plan
from salt_workstation.display import xserver
from salt_workstation.gpu import plan as gpu_plan
from salt_workstation.launchers import plan as launchers_plan

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpu"


def formula_yaml(name):
    with open(FORMULA_DIR / name, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_defaults_come_from_the_formula():
    loaded = config.load({})
    on_disk = formula_yaml("defaults.yaml")
    for key, value in on_disk.items():
        if key != "os":
            assert loaded[key] == value
    assert loaded["install_root"] == "/opt/studio"
    assert loaded["depot"] == "salt://depot"
    assert loaded["retain"] == 1
    assert loaded["catalog"] == {} and loaded["productions"] == {}
    assert contract.validate(loaded) == []


def test_not_a_mapping_pillar_is_treated_as_empty():
    assert config.load(None) == config.load({})
    assert config.load(["junk"]) == config.load({})


def test_os_family_layer_is_merged_over_defaults():
    families = formula_yaml("osfamilymap.yaml")
    for family, layer in families.items():
        loaded = config.load({}, {"os_family": family})
        assert loaded["os"] == config.merge(
            loaded["os"], layer.get("os", {})
        )  # every layer value won
        for key, value in (layer.get("os") or {}).items():
            assert loaded["os"][key] == value
    # and the layers really differ, so the family matters
    redhat = config.load({}, {"os_family": "RedHat"})["os"]
    debian = config.load({}, {"os_family": "Debian"})["os"]
    assert redhat["repo_style"] == "yum" and debian["repo_style"] == "apt"
    assert redhat["sources_dir"] != debian["sources_dir"]


def test_unknown_os_family_keeps_defaults():
    assert (
        config.load({}, {"os_family": "Plan9"})["os"]["repo_style"]
        == formula_yaml("defaults.yaml")["os"]["repo_style"]
    )


def test_codename_grain_lands_in_os():
    assert (
        config.load({}, {"os_family": "Debian", "oscodename": "trixie"})["os"]["codename"]
        == "trixie"
    )
    assert config.load({})["os"]["codename"] == ""


def test_lookup_overrides_defaults_and_os_family():
    loaded = config.load(
        {"lookup": {"install_root": "/srv/studio", "os": {"sources_dir": "/etc/apt/studio.d"}}},
        {"os_family": "Debian"},
    )
    assert loaded["install_root"] == "/srv/studio"
    assert loaded["os"]["sources_dir"] == "/etc/apt/studio.d"
    assert loaded["os"]["repo_style"] == "apt"  # deep merge: the rest of the os layer stays
    assert "lookup" not in loaded


def test_pillar_beats_lookup():
    loaded = config.load(
        {
            "lookup": {"install_root": "/srv/from-lookup", "retain": 4},
            "install_root": "/srv/from-pillar",
        },
        {"os_family": "RedHat"},
    )
    assert loaded["install_root"] == "/srv/from-pillar"
    assert loaded["retain"] == 4
    assert loaded["os"]["repo_style"] == "yum"


def test_pillar_beats_os_family_and_deep_merges():
    loaded = config.load({"os": {"keyring_dir": "/etc/studio/keys"}}, {"os_family": "RedHat"})
    assert loaded["os"] == {
        **config.load({}, {"os_family": "RedHat"})["os"],
        "keyring_dir": "/etc/studio/keys",
    }


def test_catalog_from_lookup_and_pillar_merge_per_app_and_version():
    hash_a, hash_b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    loaded = config.load(
        {
            "lookup": {
                "catalog": {"nuke": {"versions": {"15.1v3": {"source": "n15.tgz", "hash": hash_a}}}}
            },
            "catalog": {
                "nuke": {"versions": {"16.0v1": {"source": "n16.tgz", "hash": hash_b}}},
                "blender": {"versions": {"4.2": {"source": "b.tgz", "hash": hash_a}}},
            },
        }
    )
    assert set(loaded["catalog"]) == {"nuke", "blender"}
    assert set(loaded["catalog"]["nuke"]["versions"]) == {"15.1v3", "16.0v1"}


def test_lists_and_scalars_replace_rather_than_merge():
    merged = config.merge(
        {"a": [1, 2], "b": {"c": 1, "d": [1]}, "e": {"f": 1}},
        {"a": [3], "b": {"d": [2]}, "e": None},
    )
    assert merged == {"a": [3], "b": {"c": 1, "d": [2]}, "e": None}


def test_merge_and_load_never_change_their_inputs_or_the_cached_defaults():
    base = {"x": {"y": [1]}}
    override = {"x": {"z": 2}}
    merged = config.merge(base, override)
    merged["x"]["y"].append(99)
    assert base == {"x": {"y": [1]}} and override == {"x": {"z": 2}}

    first = config.load({})
    first["catalog"]["blender"] = {"versions": {}}
    first["os"]["repo_style"] = "broken"
    again = config.load({})
    assert again["catalog"] == {}
    assert again["os"]["repo_style"] == "apt"
    assert config.defaults()["catalog"] == {}


def test_an_empty_mount_packages_means_none_at_every_layer():
    for family in ("Debian", "RedHat", "Suse"):
        by_lookup = config.load({"lookup": {"os": {"mount_packages": {}}}}, {"os_family": family})
        by_pillar = config.load({"os": {"mount_packages": {}}}, {"os_family": family})
        assert by_lookup["os"]["mount_packages"] == by_pillar["os"]["mount_packages"] == {}
    # a mapping that names a client replaces the defaults too: only NFS, no SMB client
    only_nfs = config.load({"lookup": {"os": {"mount_packages": {"nfs": "nfs-common"}}}})
    assert only_nfs["os"]["mount_packages"] == {"nfs": "nfs-common"}
    # the other os keys still merge
    assert only_nfs["os"]["fstab"] == "/etc/fstab"


def _system_paths() -> dict:
    """defaults.yaml's `os:` keys that are system paths the formula writes to."""
    return {
        key: value
        for key, value in formula_yaml("defaults.yaml")["os"].items()
        if isinstance(value, str) and value.startswith("/")
    }


def test_every_system_path_is_a_lookup_os_key_in_the_one_table():
    table = (Path(__file__).resolve().parents[2] / "docs" / "pillar.md").read_text(encoding="utf-8")
    section = table[table.index("## System paths") : table.index("## Names")]
    for key, value in _system_paths().items():
        assert f"| `{key}` | `{value}`" in section, f"{key} is not in docs/pillar.md's table"


def test_lookup_os_moves_every_system_path_the_formula_writes(tmp_path):
    """Launchers, desktop entries, menus, fstab, repositories, the display agents' files and the
    nouveau blacklist and the X drop-in: each lands under the folders workstation:lookup:os names."""
    moved = {key: str(tmp_path / key) for key in _system_paths()}
    grains = {
        "os_family": "Debian",
        "os": "Debian",
        "osmajorrelease": 12,
        "oscodename": "bookworm",
        "kernelrelease": "6.1.0-28-amd64",
        **gpu_detect.grains_of(FIXTURES / "p4000-nouveau"),
    }
    merged = config.load(
        {
            "lookup": {"os": moved},
            "repositories": {
                "studio": {
                    "url": "https://repo.studio.test/debian",
                    "key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n",
                    "fingerprint": "A" * 40,
                }
            },
            "display": {
                "agents": ["dcv", "anyware", "vnc"],
                "owner": "alice",
                "dcv": {"license": "5053@rlm.studio.test"},
                "anyware": {"license_server": "https://pcoip.studio.test"},
                "vnc": {"settings": {"geometry": "1920x1080"}},
            },
            "gpu": {},
        },
        grains,
    )
    settings = launchers_plan.Settings.from_config(merged)
    display = display_plan.plan(merged, display_plan.platform_of(grains))
    written = {
        "studio-launch": str(settings.command),
        "desktop entry": str(settings.desktop_file("nightfall", "houdini")),
        "menu folder": str(settings.directory_file("nightfall")),
        "menu": str(settings.menu_file("nightfall")),
        "fstab": launchers_plan.formula(merged, {})["fstab"],
        "blacklist": gpu_plan.decide(merged, grains)["blacklist"]["path"],
        "X drop-in": xserver.plan(merged, grains)["xorg"]["path"],
        **{
            f"repository {key}": str(value)
            for entry in ws_plan.repository_states(merged)
            for key, value in (("keyring", entry["keyring"]), *entry["pkgrepo"][1].items())
        },
        **{
            f"{agent['name']} {kind}": agent[kind]["path"]
            for agent in display["agents"]
            for kind in ("config", "owner_file")
            if agent[kind]
        },
    }

    assert len([name for name in written if name.startswith(("dcv", "anyware", "vnc"))]) == 5
    outside = {name: path for name, path in written.items() if not path.startswith(str(tmp_path))}
    assert outside == {}
