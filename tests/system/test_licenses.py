"""License clients in a real Debian 12 root: the files land in its /etc, /usr/lib/sesi and /opt, with
their modes and owners, and the root's own shell and systemd read the environment they set."""

from __future__ import annotations

import shlex

import pytest

from tests.support.states import by_id, changed, failed

pytestmark = pytest.mark.system

CONTENT = 'LICENSE foundry katana_i 2025 permanent uncounted hostid=ANY sig="system-tier"\n'
LICENSES = {
    "foundry": {"type": "rlm", "isv": "foundry", "servers": ["4101@rlm1", "4101@rlm2"]},
    "autodesk": {"type": "flexlm", "servers": ["27000@lic1", "27000@lic2", "27000@lic3"]},
    "houdini": {"type": "sidefx", "servers": ["sesi1", "sesi2"]},
    "vray": {"type": "chaos", "servers": ["30304@vrlserver"]},
    "katana-node": {
        "type": "nodelocked",
        "path": "/opt/studio/licenses/katana.lic",
        "content": CONTENT,
        "mode": "0640",
        "group": "staff",
        "variable": "katana_LICENSE",
    },
}
FILES = {  # path: (mode, owner, group)
    "/etc/profile.d/workstation-licenses.sh": ("644", "root", "root"),
    "/etc/environment.d/90-workstation-licenses.conf": ("644", "root", "root"),
    "/usr/lib/sesi/hserver/.sesi_licenses.pref": ("644", "root", "root"),
    "/etc/chaos/vrlclient.xml": ("644", "root", "root"),
    "/opt/studio/licenses/katana.lic": ("640", "root", "staff"),
}
EXPECTED = {
    "foundry_LICENSE": "4101@rlm1:4101@rlm2",
    "ADSKFLEX_LICENSE_FILE": "27000@lic1:27000@lic2:27000@lic3",
    "SESI_LMHOST": "sesi1;sesi2",
    "VRAY_AUTH_CLIENT_FILE_PATH": "/etc/chaos",
    "katana_LICENSE": "/opt/studio/licenses/katana.lic",
}
GENERATOR = "/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator"


def test_license_files_land_in_the_real_root_and_its_shell_and_systemd_read_them(
    station_factory, studio_server
):
    station = station_factory(
        {
            "install_root": "/opt/studio",
            "depot": f"{studio_server.url}/depot",
            "phase": "bake",
            "licenses": LICENSES,
        }
    )
    minion = station.minion

    data = station.apply()
    again = station.apply()

    assert failed(data) == {}
    assert {key for key in changed(data) if key.startswith("workstation-license")} == {
        "workstation-licenses-environment-profile-managed",
        "workstation-licenses-environment-session-managed",
        "workstation-licenses-houdini-file-managed",
        "workstation-licenses-vray-file-managed",
        "workstation-licenses-katana-node-file-managed",
    }
    assert changed(again) == {}
    for path, owner in FILES.items():
        assert (
            tuple(minion.run("stat", "-c", "%a %U %G", path, check=True).stdout.split()) == owner
        ), path
    assert minion.read("/opt/studio/licenses/katana.lic") == CONTENT
    assert CONTENT.strip() not in str(by_id(data))
    assert minion.read("/usr/lib/sesi/hserver/.sesi_licenses.pref") == "serverhost=sesi1;sesi2\n"
    # A login shell of the root sources /etc/profile.d; what it sees is what the apps see.
    shell = minion.run(
        "bash", "-lc", "; ".join(f'echo "{name}=${name}"' for name in EXPECTED), check=True
    )
    assert shell.stdout.splitlines() == [f"{name}={value}" for name, value in EXPECTED.items()]
    if minion.exists(
        GENERATOR
    ):  # systemd's own parser of environment.d, as a desktop session runs it
        # It prints the session's environment as shell assignments, quoting values such as sesi1;sesi2.
        session = dict(
            shlex.split(line)[0].split("=", 1)
            for line in minion.run(GENERATOR, check=True).stdout.splitlines()
        )
        assert {name: session.get(name) for name in EXPECTED} == EXPECTED
