# Studio-wide settings, the same on every workstation.
workstation:
  install_root: /opt/studio
  # Relative catalog sources hang off the depot: salt:// (the master's file
  # roots), http(s):// or file:// (an NFS mount, say). A list is tried in order
  # (per-site depots: docs/pillar.md, "Depot mirrors and per-site depots").
  depot:
    - https://depot.studio.example/software
    - salt://depot
  # Keep the previous version of each app for an instant rollback (a bump
  # shares its unchanged files with it by hardlinks).
  retain: 1
  # App versions one apply installs at once (auto: 4 per CPU, 4 to 8).
  install_workers: auto
