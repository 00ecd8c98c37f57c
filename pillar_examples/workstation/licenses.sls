# License clients, the same on every workstation (docs/licenses.md). Apps name
# the licenses they need in the catalog (`licenses: [...]`), and validation
# checks that each is defined here. The Autodesk product key is a secret: it
# never appears in state output, logs or events. Keep it out of pillar with an
# sdb reference (product_key: sdb://studio-vault/secret/workstation/maya2025/key,
# docs/secrets.md) or in an encrypted pillar (the gpg renderer).
workstation:
  licenses:
    foundry:                       # Nuke: foundry_LICENSE
      type: rlm
      isv: foundry
      servers: ["4101@rlm1.studio.example", "4101@rlm2.studio.example"]
    houdini:                       # hserver's server chain, and SESI_LMHOST for farm jobs
      type: sidefx
      servers: [sesi1.studio.example]
    maya2025:                      # registered with Autodesk's licensing service after Maya installs
      type: autodesk
      product_key: 657Q1
      product_version: "2025.0.0.F"
      servers: [lic1.studio.example]
      server_type: SINGLE
