# Nightfall: a feature in lighting and comp.
workstation:
  productions:
    nightfall:
      apps:
        blender: "4.2.3"
        houdini: "20.5.410"
        nuke: "15.1v3"
