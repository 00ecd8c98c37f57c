# Pillar top file: every workstation gets the studio settings and the catalog;
# productions are assigned by grain, nodegroup or minion id glob.
base:
  'ws-*':
    - workstation.studio
    - workstation.catalog
    - workstation.licenses
    - workstation.display
    - workstation.gpu
  # Artists on Nightfall: by a grain set at image bake time (salt-call grains.set production nightfall)
  'production:nightfall':
    - match: grain
    - workstation.nightfall
  # The Harbor team's machines: by minion id
  'ws-harbor-*':
    - workstation.harbor
  # The Lighthouse team's machines
  'ws-lh-*':
    - workstation.lighthouse
  # Leads work on every show: the productions are provisioned side by side
  'ws-lead-*':
    - workstation.nightfall
    - workstation.harbor
    - workstation.lighthouse
