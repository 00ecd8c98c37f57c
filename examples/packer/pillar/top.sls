# The bake's top file: the one pillar file Packer uploaded (-var pillar_file=...).
base:
  '*':
    - workstation
