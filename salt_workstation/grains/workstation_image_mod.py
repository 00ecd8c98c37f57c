"""
Grain ``workstation_image``: what the image this machine was cloned from was
baked with (bake time, extension version, productions, app versions, a digest
of their catalog entries), as the bake recorded it (``workstation.image`` SLS).
Absent on a machine that was not cloned from a baked image.

Minion option ``workstation_image_identity`` reads another file than
/etc/salt-workstation/image.json (set it when the pillar's
``workstation:os:image_identity`` names another).
"""

from salt_workstation import image


def workstation_image():
    recorded = image.read(__opts__.get("workstation_image_identity") or image.IDENTITY_FILE)
    return {"workstation_image": recorded} if recorded is not None else {}
