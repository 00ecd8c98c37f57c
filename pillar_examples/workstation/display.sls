# Remote display: Amazon DCV for the artist who owns this workstation
# (docs/display.md). The owner is set per machine at first boot, from a grain
# or the machine's own pillar file; `artist` is the placeholder.
workstation:
  display:
    agents: [dcv]
    owner: artist
    firewall: auto
    dcv:
      web_port: 8443
      quic: true
      authentication: system
    # X on the NVIDIA card for DCV's console session, headless (docs/display.md).
    xserver:
      resolution: "2560x1440"
