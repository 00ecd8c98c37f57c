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
# Last, the seal (workstation.seal's one state): the minion's keys, machine-id, SSH host keys, Salt's
# cache and logs, and ${BAKE_DIR}. Through state.sls_id, not state.apply: state.apply writes its own
# cache (sls.p, highstate.cache.p) after the seal has run; state.sls_id writes nothing after it.
call state.sls_id workstation-image-sealed workstation.seal
