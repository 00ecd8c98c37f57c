"""The extension as Salt's loaders see it: names, the fileserver backend, rendering per OS family."""

from __future__ import annotations

import ctypes

import salt.loader

from salt_workstation import FORMULA_ROOT


def test_modules_load_under_their_virtual_names_without_shadowing_core_ones(loaders):
    functions = set(loaders.modules)

    assert {"dcc.install", "dcc.verify", "workstation.plan", "workstation.validate"} <= functions
    assert "test.ping" in functions and "archive.extracted" in loaders.states


def test_without_the_system_libarchive_the_dcc_module_says_which_package_to_install(
    minion_opts, monkeypatch
):
    """Before: the module loaded, downloaded the archive, then died with an unhandled OSError."""
    real_cdll = ctypes.CDLL

    def no_libarchive(name, *args, **kwargs):
        if name and "libarchive" in str(name):
            raise OSError(f"{name}: cannot open shared object file")
        return real_cdll(name, *args, **kwargs)

    monkeypatch.setattr(ctypes, "CDLL", no_libarchive)
    functions = salt.loader.minion_mods(minion_opts)

    assert "dcc.install" not in functions
    assert "libarchive13" in functions.missing_fun_string("dcc.install")
    assert "workstation.validate" in functions  # the rest of the extension still loads


def test_fileserver_backend_serves_the_shipped_formula(minion_opts):
    backend = salt.loader.fileserver(minion_opts, ["workstation"])
    found = backend["workstation.find_file"]("workstation/init.sls")
    listed = backend["workstation.file_list"]({"saltenv": "base"})

    assert found["path"] == str(FORMULA_ROOT / "workstation" / "init.sls")
    assert {"workstation/init.sls", "workstation/apps.sls", "workstation/map.jinja"} <= set(listed)
    assert not [path for path in listed if path.endswith((".py", ".pyc"))]
    assert backend["workstation.find_file"]("../setup.cfg")["path"] == ""
    assert backend["workstation.find_file"]("workstation/init.sls", saltenv="dev")["path"] == ""


def test_the_formula_is_seeded_into_salts_file_cache_and_a_cache_it_cannot_write_fails_nothing(
    minion_opts, tmp_path, caplog
):
    """What init.sls calls first: the formula installed here, copied where the file client caches it."""
    functions = salt.loader.minion_mods({**minion_opts, "cachedir": str(tmp_path / "cache")})
    (tmp_path / "cache").mkdir()

    copied = functions["workstation.seed_formula_cache"]("base")

    assert "workstation/init.sls" in copied
    cached = tmp_path / "cache" / "files" / "base" / "workstation" / "map.jinja"
    assert cached.read_bytes() == (FORMULA_ROOT / "workstation" / "map.jinja").read_bytes()
    assert functions["workstation.seed_formula_cache"]("base") == []

    (tmp_path / "cache" / "files" / "dev").symlink_to(tmp_path)  # planted: refused, logged
    assert functions["workstation.seed_formula_cache"]("dev") == []
    assert "Salt downloads it" in caplog.text and not (tmp_path / "workstation").exists()


REPOSITORIES = {
    "studio": {
        "url": "https://repo.studio.example/linux",
        "key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n...\n-----END PGP PUBLIC KEY BLOCK-----\n",
        "fingerprint": "A" * 40,
    }
}


def _pkgrepo(make_loaders, grains):
    loaders = make_loaders(grains=grains, pillar={"repositories": REPOSITORIES})
    low = loaders.modules.state.show_low_sls("workstation")
    return next(chunk for chunk in low if chunk["__id__"] == "workstation-repo-studio")


def test_debian_renders_an_apt_source_signed_by_the_pinned_keyring(make_loaders):
    chunk = _pkgrepo(make_loaders, {"os_family": "Debian", "oscodename": "bookworm"})

    assert chunk["state"] == "pkgrepo" and chunk["fun"] == "managed"
    assert chunk["name"] == (
        "deb [signed-by=/etc/apt/keyrings/workstation-studio.gpg] https://repo.studio.example/linux bookworm main"
    )
    assert chunk["file"] == "/etc/apt/sources.list.d/workstation-studio.list"
    assert chunk["aptkey"] is False


def test_redhat_renders_a_yum_repo_with_gpg_checks_on(make_loaders):
    chunk = _pkgrepo(make_loaders, {"os_family": "RedHat", "osmajorrelease": 9})

    assert chunk["name"] == "workstation-studio"
    assert chunk["baseurl"] == "https://repo.studio.example/linux"
    assert chunk["gpgcheck"] == 1 and chunk["repo_gpgcheck"] == 1
    assert chunk["gpgkey"] == "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-workstation-studio"


def _service_chunk(make_loaders, phase):
    pillar = {
        "phase": phase,
        "catalog": {
            "dcv": {
                "versions": {
                    "2024.0-1": {
                        "kind": "packages",
                        "packages": {"nice-dcv-server": "2024.0-1"},
                        "services": ["dcvserver.service"],
                    }
                }
            }
        },
        "productions": {"nightfall": {"apps": {"dcv": "2024.0-1"}}},
    }
    low = make_loaders(grains={"os_family": "Debian"}, pillar=pillar).modules.state.show_low_sls(
        "workstation"
    )
    return next(
        chunk for chunk in low if chunk["__id__"] == "workstation-service-dcvserver.service"
    )


def test_an_image_bake_enables_units_without_starting_them(make_loaders):
    chunk = _service_chunk(make_loaders, "bake")

    assert (chunk["state"], chunk["fun"], chunk["name"]) == (
        "workstation",
        "unit_enabled",
        "dcvserver.service",
    )
    assert chunk["require"] == [{"dcc": "workstation-app-dcv-2024.0-1"}]


def test_a_boot_or_full_apply_runs_and_enables_units(make_loaders):
    chunk = _service_chunk(make_loaders, "all")

    assert (chunk["state"], chunk["fun"], chunk["enable"]) == ("service", "running", True)
