# The studio catalog: every app version a production may use. Maintained by
# the pipeline team; productions pick versions from it. Versions are quoted:
# YAML reads 2025.10 as the number 2025.1. The hashes below are placeholders of
# the right shape: put the output of `sha256sum` on each depot file there.
#
# Depot layout (relative to workstation:depot):
#   blender/blender-4.2.3-linux-x64.tar.xz
#   blender/blender-4.1.1-linux-x64.tar.xz
#   houdini/houdini-20.5.410-linux_x86_64_gcc11.2.tar.gz     (SideFX installer inside)
#   houdini/houdini-20.0.751-linux_x86_64_gcc9.3.tar.gz
#   nuke/Nuke15.1v3-linux-x86_64.tgz                          (Foundry .run inside)
#   ocio/ocio-configs-2.4.0.zip
# Maya comes from the studio's package repository (kind: packages), not the depot.
workstation:
  catalog:
    blender:
      name: Blender
      versions:
        "4.2.3":
          source: blender/blender-4.2.3-linux-x64.tar.xz
          hash: sha256:3b5bd6c4b2d1d7b1d8ef6ea1bb2c3a3b36ad6a5e0f2d83a3bd1fb4c1b3e1a0a1
          strip_components: 1
          launchers: {blender: blender}
          env: {BLENDER_SYSTEM_SCRIPTS: "{dest}/scripts"}
        "4.1.1":
          source: blender/blender-4.1.1-linux-x64.tar.xz
          hash: sha256:7d1f6c0a9a3e5b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c
          strip_components: 1
          launchers: {blender: blender}
    houdini:
      name: Houdini
      versions:
        "20.5.410":
          kind: installer
          source: houdini/houdini-20.5.410-linux_x86_64_gcc11.2.tar.gz
          hash: sha256:a4c1e3f5b7d9a1c3e5f7b9d1a3c5e7f9b1d3a5c7e9f1b3d5a7c9e1f3b5d7a9c1
          strip_components: 1
          installer:
            command: [./houdini.install, --auto-install, --accept-EULA, "2021-10-13", --install-houdini,
                      --no-install-license, --no-install-menus, --no-install-bin-symlink, --make-dir, "{dest}"]
            timeout: 1800
          launchers: {houdini: bin/houdini, hython: bin/hython}
          env: {HFS: "{dest}"}
        "20.0.751":
          kind: installer
          source: houdini/houdini-20.0.751-linux_x86_64_gcc9.3.tar.gz
          hash: sha256:b5d2f4a6c8e0b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2
          strip_components: 1
          installer:
            command: [./houdini.install, --auto-install, --accept-EULA, "2021-10-13", --install-houdini,
                      --no-install-license, --no-install-menus, --no-install-bin-symlink, --make-dir, "{dest}"]
          launchers: {houdini: bin/houdini, hython: bin/hython}
          env: {HFS: "{dest}"}
    nuke:
      name: Nuke
      versions:
        "15.1v3":
          kind: installer
          source: nuke/Nuke15.1v3-linux-x86_64.tgz
          hash: sha256:c6e3a5b7d9f1c3e5a7b9d1f3c5e7a9b1d3f5c7e9a1b3d5f7c9e1a3b5d7f9c1e3
          installer:
            command: [./Nuke15.1v3-linux-x86_64.run, --accept-foundry-eula, "--prefix={dest}", --exclude-subdir]
            timeout: 1800
          launchers: {nuke: Nuke15.1}
    maya:
      name: Maya
      versions:
        "2025.3":
          kind: packages
          packages: {maya2025: "2025.3-1", adsklicensing: "14.0.0.10163-1"}
          launchers: {maya: /usr/autodesk/maya2025/bin/maya}
          env: {MAYA_LOCATION: /usr/autodesk/maya2025}
          licenses: [maya2025]
    ocio:
      name: OpenColorIO configs
      versions:
        "2.4.0":
          source: ocio/ocio-configs-2.4.0.zip
          hash: sha256:d7f4b6c8e0a2d4f6b8c0e2a4d6f8b0c2e4a6d8f0b2c4e6a8d0f2b4c6e8a0d2f4
          strip_components: 1
          env: {OCIO: "{dest}/studio-config-v2.4.0/config.ocio"}
