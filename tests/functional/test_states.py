"""Our state modules through Salt's loaders: the state contract, test=True, idempotency."""

from __future__ import annotations

from tests.support import archives

CONTRACT = {"name", "result", "changes", "comment"}


def _app(tmp_path, version="1.0"):
    source = archives.write_tar(
        tmp_path / "depot" / f"tool-{version}.tar.gz",
        archives.app_files("tool", version),
        top=f"tool-{version}",
    )
    return {
        "source": f"file://{source}",
        "hash": archives.sha256_of(source),
        "strip_components": 1,
        "launchers": {"tool": "bin/tool"},
    }


def _assert_contract(result):
    raw = result.full_return
    assert set(raw) >= CONTRACT
    assert isinstance(raw["changes"], dict) and isinstance(raw["comment"], str)
    assert raw["result"] in (True, False, None)


def test_standalone_installed_answers_test_then_acts_then_converges(loaders, tmp_path):
    root = tmp_path / "studio"
    spec = _app(tmp_path)

    dry = loaders.states.dcc.installed(
        "tool", version="1.0", install_root=str(root), test=True, **spec
    )
    assert not root.exists()
    real = loaders.states.dcc.installed("tool", version="1.0", install_root=str(root), **spec)
    again = loaders.states.dcc.installed("tool", version="1.0", install_root=str(root), **spec)

    for result in (dry, real, again):
        _assert_contract(result)
    assert dry.result is None
    assert real.result is True and real.changes == dry.changes
    assert real.changes["installed"] is True and real.changes["hash"] == spec["hash"]
    assert again.result is True and again.changes == {}
    assert "is installed" in again.comment


def test_a_rebuilt_version_is_replaced_and_test_mode_says_so(loaders, tmp_path):
    root = tmp_path / "studio"
    first = _app(tmp_path)
    loaders.states.dcc.installed("tool", version="1.0", install_root=str(root), **first)
    rebuilt = archives.write_tar(
        tmp_path / "depot2" / "tool-1.0.tar.gz",
        {**archives.app_files("tool", "1.0"), "NEW": (b"hotfix", 0o644)},
        top="tool-1.0",
    )
    second = {**first, "source": f"file://{rebuilt}", "hash": archives.sha256_of(rebuilt)}

    dry = loaders.states.dcc.installed(
        "tool", version="1.0", install_root=str(root), test=True, **second
    )
    real = loaders.states.dcc.installed("tool", version="1.0", install_root=str(root), **second)

    assert dry.result is None and dry.changes == real.changes
    assert real.changes["replaced"]["old"]["hash"] == first["hash"]
    assert (root / "apps" / "tool" / "1.0" / "NEW").read_bytes() == b"hotfix"


def test_absent_removes_what_it_installed_and_nothing_else(loaders, tmp_path):
    root = tmp_path / "studio"
    loaders.states.dcc.installed("tool", version="1.0", install_root=str(root), **_app(tmp_path))
    handmade = root / "apps" / "tool" / "hand-made"
    handmade.mkdir()

    dry = loaders.states.dcc.absent("tool", install_root=str(root), test=True)
    real = loaders.states.dcc.absent("tool", install_root=str(root))
    again = loaders.states.dcc.absent("tool", install_root=str(root))

    assert dry.result is None and dry.changes == {"removed": ["1.0"]}
    assert real.result is True and real.changes == dry.changes
    assert again.result is True and again.changes == {}
    assert handmade.is_dir()


def test_pruned_refuses_a_bad_retain_with_the_pillar_path(loaders, tmp_path):
    result = loaders.states.dcc.pruned(
        "tool", keep=["1.0"], retain="two", install_root=str(tmp_path)
    )

    _assert_contract(result)
    assert result.result is False
    assert "workstation:retain" in result.comment


def test_installed_with_a_bad_spec_names_every_path_and_touches_nothing(loaders, tmp_path):
    root = tmp_path / "studio"
    result = loaders.states.dcc.installed(
        "tool",
        version=2025.1,
        install_root=str(root),
        source="tool.tar.gz",
        hsah="sha256:abc",
        used_by=["workstation:productions:nightfall:apps:tool"],
    )

    assert result.result is False
    assert (
        "workstation:productions:nightfall:apps:tool: version 2025.1 is a number" in result.comment
    )
    assert "quote it" in result.comment
    assert (
        "workstation:catalog:tool:versions:2025.1:hsah: unknown key; did you mean 'hash'?"
        in result.comment
    )
    assert not root.exists()


def test_a_keyring_is_never_read_or_written_through_a_link_and_a_folder_there_fails_clearly(
    loaders, tmp_path, signing_key
):
    armored, fingerprint = signing_key
    repo = {"url": "http://127.0.0.1:1/debian", "key": armored, "fingerprint": fingerprint}
    linked = tmp_path / "keyrings" / "linked.gpg"
    linked.parent.mkdir()
    elsewhere = tmp_path / "elsewhere.gpg"
    elsewhere.write_bytes(b"someone else's")
    linked.symlink_to(elsewhere)
    folder = tmp_path / "keyrings" / "folder.gpg"
    folder.mkdir()

    replaced = loaders.states.workstation.keyring(str(linked), repository="studio", repo=repo)
    refused = loaders.states.workstation.keyring(str(folder), repository="studio", repo=repo)

    assert (
        replaced.result is True
        and not linked.is_symlink()
        and elsewhere.read_bytes() == b"someone else's"
    )
    assert (
        refused.result is False
        and f"{folder} is a folder; remove it so the file can be written" in refused.comment
    )
    assert "Traceback" not in refused.comment


def test_keyring_is_written_only_for_the_pinned_fingerprint(loaders, tmp_path, signing_key):
    armored, fingerprint = signing_key
    target = tmp_path / "keyrings" / "workstation-studio.gpg"
    repo = {"url": "http://127.0.0.1:1/debian", "key": armored, "fingerprint": fingerprint}
    impostor = {**repo, "fingerprint": "0" * 40}

    refused = loaders.states.workstation.keyring(str(target), repository="studio", repo=impostor)
    dry = loaders.states.workstation.keyring(str(target), repository="studio", repo=repo, test=True)
    assert not target.exists()
    real = loaders.states.workstation.keyring(str(target), repository="studio", repo=repo)
    again = loaders.states.workstation.keyring(str(target), repository="studio", repo=repo)

    assert refused.result is False and fingerprint in refused.comment
    assert "workstation:repositories:studio:fingerprint" in refused.comment
    assert dry.result is None and dry.changes == real.changes
    assert real.result is True and target.read_bytes()[:1] != b"-"  # dearmoured for apt's signed-by
    assert again.result is True and again.changes == {}


def test_the_config_is_merged_once_per_job_and_again_when_the_pillar_changes(
    make_loaders, monkeypatch, tmp_path
):
    """Before: map.jinja in every SLS, and every state, merged the config again (six and more per apply)."""
    from salt_workstation import config as ws_config

    loaders = make_loaders(
        pillar={"install_root": str(tmp_path / "studio"), "depot": str(tmp_path / "depot")}
    )
    merges = []
    real_load = ws_config.load
    monkeypatch.setattr(
        ws_config, "load", lambda *args, **kwargs: merges.append(1) or real_load(*args, **kwargs)
    )

    rendered = loaders.modules.state.show_sls("workstation")
    assert isinstance(rendered, dict) and "workstation-pillar-validated" in rendered
    assert len(merges) == 1
    loaders.modules.state.show_sls("workstation", pillar={"workstation": {"retain": 3}})
    assert len(merges) == 2
    assert loaders.modules.workstation.config()["retain"] == 1  # back to the minion's own pillar
    assert len(merges) == 3


def test_a_version_bump_says_what_it_shares_and_a_mirror_list_installs(loaders, tmp_path):
    """Issue #16: the state's comment names the bytes a bump shares with the installed version by
    hardlinks; a source list whose first mirror is missing installs from the next, with a note."""
    root = tmp_path / "studio"
    common = {f"lib/part{i}.bin": (bytes([i]) * 65536, 0o644) for i in range(8)}

    def build(version):
        files = {
            **archives.app_files("tool", "1.0"),
            **common,
            "VERSION": (version.encode(), 0o644),
        }
        path = archives.write_tar(
            tmp_path / "depot" / f"tool-{version}.tar.gz", files, top=f"tool-{version}"
        )
        return {
            "source": [f"file://{tmp_path}/gone/tool-{version}.tar.gz", f"file://{path}"],
            "hash": archives.sha256_of(path),
            "strip_components": 1,
            "launchers": {"tool": "bin/tool"},
        }

    first = loaders.states.dcc.installed(
        "tool", version="1.0", install_root=str(root), **build("1.0")
    )
    bump = build("1.1")
    dry = loaders.states.dcc.installed(
        "tool", version="1.1", install_root=str(root), test=True, **bump
    )
    real = loaders.states.dcc.installed("tool", version="1.1", install_root=str(root), **bump)
    assert first.result is True and real.result is True
    assert real.changes == dry.changes
    assert "- depot mirror skipped: " in real.comment and "/gone/tool-1.1.tar.gz" in real.comment
    assert "0.5 MiB (100%, 12 files) shared with 1.0 by hardlinks, not copied" in real.comment


def test_a_failed_install_is_logged_once_and_names_its_version_once(loaders, tmp_path, caplog):
    """Salt logs a failed state once (and salt-call prints a failed function); the module adds no
    second ERROR line, and the comment names the app version once."""
    spec = {**_app(tmp_path), "hash": "sha256:" + "0" * 64}
    with caplog.at_level("DEBUG"):
        result = loaders.states.dcc.installed(
            "tool", version="1.0", install_root=str(tmp_path / "studio"), **spec
        )
        missing = loaders.states.dcc.installed(
            "tool", version="2.0", install_root=str(tmp_path / "studio"), spec=None
        )

    assert result.result is False and missing.result is False
    for comment in (result.comment, missing.comment):
        assert comment.count("tool 1.0") + comment.count("tool 2.0") == 1, comment
    assert "workstation:catalog:tool:versions:2.0: no such entry" in missing.comment
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [result.comment, missing.comment]  # Salt's line for each failed state, once


def test_packages_installed_with_no_packages_asked_for_changes_nothing(loaders):
    result = loaders.states.dcc.packages_installed("production storage clients", packages={})

    _assert_contract(result)
    assert result.result is True and result.changes == {}
    assert result.comment == "production storage clients: none asked for"
