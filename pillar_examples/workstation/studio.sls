# Studio-wide settings, the same on every workstation.
workstation:
  install_root: /opt/studio
  # Relative catalog sources hang off the depot: salt:// (the master's file
  # roots), http(s):// or file:// (an NFS mount, say).
  depot: https://depot.studio.example/software
  # Keep the previous version of each app for an instant rollback.
  retain: 1
