# Harbor: an episodic show, on the previous Houdini; shares Blender 4.2.3 with
# Nightfall (one install serves both).
workstation:
  productions:
    harbor:
      env: {SHOW: harbor, JOB: /mnt/harbor/projects}   # set by every launcher of this production
      apps:
        blender: "4.2.3"
        houdini: "20.0.751"
        ocio: "2.4.0"
