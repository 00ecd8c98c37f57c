# Harbor: an episodic show, on the previous Houdini; shares Blender 4.2.3 with
# Nightfall (one install serves both).
workstation:
  productions:
    harbor:
      apps:
        blender: "4.2.3"
        houdini: "20.0.751"
        ocio: "2.4.0"
