#!/bin/bash
# Runs as root on the instance Packer bakes (workstation.json): installs Salt and the
# extension into /opt/salt, applies the workstation formula with the uploaded pillar
# (phase bake), then seals the image. Any failing state fails the bake.
set -euo pipefail
: "${SALT_VERSION:?}" "${BAKE_DIR:?}"

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends python3-venv libarchive13 gnupg ca-certificates

python3 -m venv /opt/salt
/opt/salt/bin/pip install -q "salt==${SALT_VERSION}" "${BAKE_DIR}"/salt_workstation-*.whl
mkdir -p /srv/salt

call() { /opt/salt/bin/salt-call --local -c "${BAKE_DIR}" --retcode-passthrough "$@"; }
call state.apply workstation
call state.apply workstation.seal   # last: removes the minion's keys, machine-id, logs and ${BAKE_DIR}
