# Production "lighthouse": a Maya show. Maya comes as the vendor's OS packages
# (kind: packages in the catalog) and registers with Autodesk's licensing
# service once it is installed (workstation:licenses:maya2025).
workstation:
  productions:
    lighthouse:
      apps:
        maya: "2025.3"
        nuke: "15.1v3"
      env:
        SHOW: lighthouse
