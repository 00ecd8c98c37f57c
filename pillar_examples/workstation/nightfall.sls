# Nightfall: a feature in lighting and comp.
workstation:
  productions:
    nightfall:
      env: {SHOW: nightfall, JOB: /mnt/nightfall/projects}   # set by every launcher of this production
      apps:
        blender: "4.2.3"
        houdini: "20.5.410"
        nuke: "15.1v3"
