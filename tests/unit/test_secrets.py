"""Every secret the pillar holds is masked in a returned config; nothing else is."""

from salt_workstation import secrets


def test_redact_masks_each_secret_path_and_keeps_the_rest():
    config = {
        "install_root": "/opt/studio",
        "licenses": {
            "katana": {"type": "nodelocked", "content": "LICENSE-TEXT", "path": "/opt/k.lic"},
            "maya": {"type": "autodesk", "product_key": "657Q1", "servers": ["lic1"]},
        },
        "display": {"anyware": {"registration_code": "ABCD@0123-4567", "flavor": "auto"}},
        "productions": {
            "nightfall": {
                "mounts": {
                    "projects": {
                        "type": "smb",
                        "credentials": {"username": "render", "password": "hunter2"},
                    }
                }
            }
        },
    }

    masked = secrets.redact(config)

    assert "LICENSE-TEXT" not in str(masked) and "657Q1" not in str(masked)
    assert "ABCD@0123-4567" not in str(masked) and "hunter2" not in str(masked)
    assert masked["productions"]["nightfall"]["mounts"]["projects"] == {
        "type": "smb",
        "credentials": secrets.MASK,
    }
    assert masked["licenses"]["katana"]["path"] == "/opt/k.lic"
    assert masked["display"]["anyware"]["flavor"] == "auto"
    assert config["licenses"]["katana"]["content"] == "LICENSE-TEXT"  # the original is untouched
