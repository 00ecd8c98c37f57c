"""License clients of the DCCs, from `workstation:licenses` (docs/licenses.md).

- `contract`: the pillar's licenses part and its validation, every issue at its pillar path;
- `plan`: what this machine should have, as plain data (what `workstation.licenses` loops over);
- `status`: what it has now, read only (files, Autodesk registrations, license servers answering);
- `effects`: the only code that changes it (files through safefs, the Autodesk helper by argv).

Secrets (a node-locked license's `content`, an Autodesk `product_key`) never leave the pillar
except into the license file or the helper's command line; everything else carries their pillar path.
"""

from salt_workstation.licenses.contract import check

__all__ = ["check"]
