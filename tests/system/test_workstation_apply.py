"""`salt '*' state.apply workstation` from a real master to a real minion in a fresh Debian 12 root.

Each test gets its own root (an overlay of the cached one) with the minion
inside; the depot and the apt repositories are served over loopback HTTP.
"""

from __future__ import annotations

import pytest

from tests.support.states import by_id, changed, failed
from tests.system.conftest import BLENDER, workstation_pillar

pytestmark = pytest.mark.system

KEYRING = "/etc/apt/keyrings/workstation-studio.gpg"
SOURCES = "/etc/apt/sources.list.d/workstation-studio.list"
PACKAGE_FILES = (
    "/usr/lib/studio-standin/driver-version",
    "/lib/systemd/system/studio-standin.service",
    "/usr/bin/dcvserver-standin",
    "/lib/systemd/system/dcvserver-standin.service",
)
PACKAGES = {"studio-gpu-driver-standin": "1.0-1", "nice-dcv-server": "2024.0-1"}
INSTALL_STATES = {
    "workstation-repo-studio-keyring",
    "workstation-repo-studio",
    "workstation-app-blender-4.2.3",
    "workstation-app-gpu-driver-standin-1.0-1",
    "workstation-app-nice-dcv-2024.0-1",
    "workstation-service-studio-standin.service",
    "workstation-launchers-nightfall-launchers-managed",
    "workstation-launchers-studio-launch-installed",
    "workstation-image-identity-recorded",  # phase bake: what the image holds
}
ENABLED_LINK = "/etc/systemd/system/multi-user.target.wants/studio-standin.service"


def assert_refused_by_apt(data, reason):
    """The repository state fails for the signature, and no packages app claims success."""
    refused = failed(data)
    assert "workstation-repo-studio" in refused, by_id(data)
    assert reason in refused["workstation-repo-studio"]
    assert (
        by_id(data)["workstation-repo-studio-keyring"]["result"] is True
    )  # the pinned key itself is fine
    for state_id in (
        "workstation-app-gpu-driver-standin-1.0-1",
        "workstation-app-nice-dcv-2024.0-1",
    ):
        assert state_id in refused, by_id(data)[state_id]


def assert_nothing_from_the_repository(minion):
    for name in PACKAGES:
        assert minion.package(name) is None, minion.dpkg_status(name)
        assert "is not installed" in minion.dpkg_status(name)
    for path in PACKAGE_FILES:
        assert not minion.exists(path), (
            f"{path} exists in the root, though its repository was refused"
        )


def test_fresh_root_converges_then_a_second_apply_changes_nothing(station_factory, studio_server):
    station = station_factory(workstation_pillar(studio_server))
    minion = station.minion

    data = station.apply()

    assert failed(data) == {}
    assert set(changed(data)) == INSTALL_STATES
    app, version = BLENDER
    launcher = f"/opt/studio/apps/{app}/{version}/bin/{app}"
    assert (
        minion.run(launcher, "--version", check=True).stdout.strip() == f"{app} {version} --version"
    )
    for name, version in PACKAGES.items():
        assert minion.package(name) == version, minion.dpkg_status(name)
    assert minion.read("/usr/lib/studio-standin/driver-version") == "1.0-1\n"
    for path in PACKAGE_FILES:
        assert minion.is_file(path), path
    keyring = minion.read_bytes(KEYRING)
    assert keyring and not keyring.startswith(b"-----BEGIN"), "the keyring is not dearmoured"
    sources = minion.read(SOURCES)
    assert f"[signed-by={KEYRING}]" in sources and studio_server.url + "/debian " in sources, (
        sources
    )
    # phase bake: the unit is enabled for the next boot (its [Install] link exists) and nothing was started
    assert (
        minion.run("readlink", ENABLED_LINK, check=True).stdout.strip()
        == "/lib/systemd/system/studio-standin.service"
    )
    assert (
        minion.run("systemctl", "is-enabled", "studio-standin.service").stdout.strip() == "enabled"
    )

    requests_before = studio_server.server.requests
    again = station.apply()

    assert failed(again) == {}
    assert changed(again) == {}
    assert studio_server.server.requests == requests_before, (
        "a converged apply fetched from the depot or the repository"
    )


def test_dry_run_on_a_fresh_root_predicts_exactly_what_the_real_run_does(
    station_factory, studio_server
):
    station = station_factory(workstation_pillar(studio_server))

    predicted = station.apply("test=True")

    assert failed(predicted) == {}
    assert not station.minion.exists("/opt/studio"), "test=True wrote the install_root"
    assert not station.minion.exists(KEYRING), "test=True wrote the keyring"
    for name in PACKAGES:
        assert station.minion.package(name) is None, f"test=True installed {name}"

    real = station.apply()

    assert failed(real) == {}
    assert changed(predicted) == changed(real)
    assert set(changed(real)) == INSTALL_STATES
    pending = {key for key, state in by_id(predicted).items() if state["result"] is None}
    assert pending == INSTALL_STATES


def test_an_unsigned_repository_is_refused(station_factory, studio_server):
    station = station_factory(workstation_pillar(studio_server, tree="unsigned"))

    data = station.apply()

    assert_refused_by_apt(data, "is not signed")
    assert_nothing_from_the_repository(station.minion)


def test_a_repository_signed_by_another_key_than_the_pinned_one_is_refused(
    station_factory, studio_server
):
    # The pillar pins the studio key; the served repository is signed by someone else's.
    station = station_factory(workstation_pillar(studio_server, tree="other_key"))

    data = station.apply()

    assert_refused_by_apt(data, "NO_PUBKEY")
    assert_nothing_from_the_repository(station.minion)


def test_a_key_whose_fingerprint_is_not_the_pinned_one_is_never_installed(
    station_factory, studio_server
):
    # Someone swapped the key text (and the repository it signs) but not the pinned fingerprint.
    station = station_factory(workstation_pillar(studio_server, tree="other_key", key="other"))

    data = station.apply()

    refused = failed(data)
    assert "workstation-repo-studio-keyring" in refused, by_id(data)
    assert studio_server.repos.other_fingerprint in refused["workstation-repo-studio-keyring"]
    assert not station.minion.exists(KEYRING)
    assert_nothing_from_the_repository(station.minion)
    # The rest of the workstation still converges.
    assert by_id(data)["workstation-app-blender-4.2.3"]["result"] is True
