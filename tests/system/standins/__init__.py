"""Stand-in .deb packages for the signed test repository: one module per feature, each with STAND_INS."""
