"""The shipped formula's files, and their copy into Salt's file cache (what a sealed image's first boot reads)."""

from __future__ import annotations

import stat

import pytest

from salt_workstation import FORMULA_ROOT, formula
from salt_workstation.errors import UnsafePath


def test_the_shipped_files_are_the_formula_without_python():
    files = formula.files()

    assert {"workstation/init.sls", "workstation/map.jinja", "workstation/defaults.yaml"} <= set(
        files
    )
    assert not [name for name in files if name.endswith((".py", ".pyc")) or "__pycache__" in name]


def test_seeding_copies_every_formula_file_where_salt_caches_it(tmp_path):
    copied = formula.seed(str(tmp_path), "base")

    assert copied == formula.files()
    for name in copied:
        cached = tmp_path / "files" / "base" / name
        assert cached.read_bytes() == (FORMULA_ROOT / name).read_bytes()
        assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "files" / "base" / "workstation").stat().st_mode) == 0o700


def test_a_file_salt_already_cached_is_never_replaced(tmp_path):
    fetched = tmp_path / "files" / "base" / "workstation" / "init.sls"
    fetched.parent.mkdir(parents=True)
    fetched.write_text("# the master's version\n")

    copied = formula.seed(str(tmp_path), "base")

    assert "workstation/init.sls" not in copied and len(copied) == len(formula.files()) - 1
    assert fetched.read_text() == "# the master's version\n"
    assert formula.seed(str(tmp_path), "base") == []  # a second apply copies nothing


def test_a_link_planted_in_the_cache_is_refused_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "cache" / "files").mkdir(parents=True)
    (tmp_path / "cache" / "files" / "base").symlink_to(elsewhere)

    with pytest.raises(UnsafePath, match="is a symlink"):
        formula.seed(str(tmp_path / "cache"), "base")
    assert list(elsewhere.iterdir()) == []
