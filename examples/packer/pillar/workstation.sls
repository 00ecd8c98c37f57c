# The pillar of one image bake: phase bake, the production whose app versions
# are baked in, and their catalog entries. `salt-run workstation.recipes
# write=<folder>` writes one such file per recipe the fleet needs; pass it to
# Packer with -var pillar_file=<folder>/recipe-1.sls.
workstation:
  phase: bake                      # install and enable; start, register and mount nothing
  install_root: /opt/studio
  depot: https://depot.studio.example/software
  catalog:
    blender:
      versions:
        "4.2.3":
          source: blender/blender-4.2.3-linux-x64.tar.xz
          hash: sha256:3b5bd6c4b2d1d7b1d8ef6ea1bb2c3a3b36ad6a5e0f2d83a3bd1fb4c1b3e1a0a1
          size: 1073741824
          strip_components: 1
          launchers: {blender: blender}
  productions:
    nightfall:
      apps:
        blender: "4.2.3"
