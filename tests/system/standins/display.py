"""Stand-ins for the remote display agents' packages: Amazon DCV, HP Anyware (PCoIP), TigerVNC.

Each ships the files the display states touch, where the vendor's package
puts them: the agent's config file with the vendor's comments and one
unrelated key already set (the merge must keep it), and its systemd unit.

nice-dcv-server 2024.0-1 (tests/system/standins/core.py) has no dcv.conf, no
dcvserver.service and no `dcv` user; 2024.0-2 here adds them, as the real
package has them. An unpinned install takes 2024.0-2; the core scenario pins
2024.0-1 and keeps getting it.

HP's pcoip-register-host and pcoip-validate-license are small sh scripts
(register_host_script / validate_license_script) that the integration tier
also runs from a temporary folder: registering records a digest of the code
it was given, never the code.
"""

from tests.system.aptrepo import StandIn, unit_file

REGISTRATION_MARKER = "/var/lib/pcoip-agent/registration.sha256"
REJECTED_PREFIX = "REJECT"  # codes starting with this are refused, and the refusal echoes the code


def register_host_script(marker: str = REGISTRATION_MARKER) -> bytes:
    """pcoip-register-host: takes --registration-code=<code> like HP's; refuses REJECT* codes, echoing them
    the way a chatty vendor tool might (the states must mask that)."""
    return f"""#!/bin/sh
# Stand-in for HP Anyware's pcoip-register-host (system and integration tests).
code=""
for arg in "$@"; do
  case "$arg" in
    --registration-code=*) code="${{arg#--registration-code=}}" ;;
  esac
done
if [ -z "$code" ]; then
  echo "usage: pcoip-register-host --registration-code=<code>" >&2
  exit 2
fi
case "$code" in
  {REJECTED_PREFIX}*) echo "Registration failed: the licensing service refused code $code" >&2; exit 1 ;;
esac
mkdir -p "$(dirname '{marker}')"
printf '%s' "$code" | sha256sum | cut -d' ' -f1 > '{marker}'
echo "Host registered"
""".encode()


def validate_license_script(marker: str = REGISTRATION_MARKER) -> bytes:
    return f"""#!/bin/sh
# Stand-in for HP Anyware's pcoip-validate-license: valid once pcoip-register-host has run.
if [ -s '{marker}' ]; then echo "License is valid"; exit 0; fi
echo "No valid license found" >&2
exit 1
""".encode()


DCV_CONF = b"""## Amazon DCV server configuration (stand-in of the package's default)
##
## Settings are TOML-like: strings are quoted, numbers and true/false are not.

[license]
#license-file = ""

[log]
#level = "info"

[session-management]
#create-session = false

[session-management/defaults]

[session-management/automatic-console-session]
#owner = ""

[display]
target-fps = 30

[connectivity]
#web-port = 8443
#enable-quic-frontend = false

[security]
#authentication = "system"
"""

PCOIP_CONF = b"""# PCoIP agent configuration (stand-in of HP Anyware's default)
# pcoip.maximum_frame_rate = 30
pcoip.event_filter_mode = 2
"""

VNC_USERS = b"""# TigerVNC User assignment
#
# This file assigns users to specific VNC display numbers.
# The syntax is <display>=<username>. E.g.:
#
# :2=andrew
# :3=lisa
"""

DCV_POSTINST = b"""#!/bin/sh
set -e
# The real package runs its server as the system user `dcv`.
if [ "$1" = configure ] && ! getent passwd dcv >/dev/null; then
  useradd --system --no-create-home --home-dir /var/lib/dcv --shell /usr/sbin/nologin dcv
fi
"""


def _agent(name, version, files, description, **fields):
    return StandIn(name, version, files, f"Stand-in for {description} (system tests)", fields)


def _pcoip(flavor: str, other: str) -> StandIn:
    return _agent(
        f"pcoip-agent-{flavor}",
        "24.10.0-1",
        {
            "/etc/pcoip-agent/pcoip-agent.conf": (PCOIP_CONF, 0o644),
            "/DEBIAN/conffiles": (b"/etc/pcoip-agent/pcoip-agent.conf\n", 0o644),
            "/usr/sbin/pcoip-register-host": (register_host_script(), 0o755),
            "/usr/sbin/pcoip-validate-license": (validate_license_script(), 0o755),
            "/lib/systemd/system/pcoip-agent.service": (
                unit_file(f"PCoIP {flavor} agent stand-in", "/bin/sleep infinity"),
                0o644,
            ),
        },
        f"the HP Anyware PCoIP {flavor} agent",
        Conflicts=f"pcoip-agent-{other}",
    )


STAND_INS = (
    _agent(
        "nice-dcv-server",
        "2024.0-2",
        {
            "/etc/dcv/dcv.conf": (DCV_CONF, 0o644),
            "/DEBIAN/conffiles": (b"/etc/dcv/dcv.conf\n", 0o644),
            "/DEBIAN/postinst": (DCV_POSTINST, 0o755),
            "/usr/bin/dcvserver": (b"#!/bin/sh\necho 'dcvserver stand-in 2024.0-2'\n", 0o755),
            "/lib/systemd/system/dcvserver.service": (
                unit_file("Amazon DCV server stand-in", "/usr/bin/dcvserver"),
                0o644,
            ),
        },
        "the Amazon DCV server package",
    ),
    _agent(
        "nice-xdcv",
        "2024.0-1",
        {"/usr/bin/Xdcv": (b"#!/bin/sh\necho 'Xdcv stand-in'\n", 0o755)},
        "Amazon DCV's virtual session X server",
    ),
    _agent(
        "nice-dcv-gl",
        "2024.0-1",
        {
            "/usr/lib/dcv-gl/README": (b"DCV GL stand-in\n", 0o644),
            # DCV's GL diagnostics, with the shape of its findings: the root has no X server to check.
            "/usr/bin/dcvgldiag": (
                b"#!/bin/sh\necho 'Running tests: ........ DONE'\necho\necho 'ERROR (1/1)'\necho\n"
                b"echo '  The X server is not running on the NVIDIA GPU.'\n",
                0o755,
            ),
        },
        "Amazon DCV's GPU sharing for virtual sessions",
    ),
    _agent(
        "nice-dcv-web-viewer",
        "2024.0-1",
        {"/usr/share/dcv/www/index.html": (b"<html></html>\n", 0o644)},
        "Amazon DCV's web browser client",
    ),
    _pcoip("graphics", "standard"),
    _pcoip("standard", "graphics"),
    _agent(
        "tigervnc-standalone-server",
        "1.12.0+dfsg-8",
        {
            "/etc/tigervnc/vncserver.users": (VNC_USERS, 0o644),
            "/DEBIAN/conffiles": (b"/etc/tigervnc/vncserver.users\n", 0o644),
            "/usr/libexec/tigervncsession-start": (b"#!/bin/sh\nexec /bin/sleep infinity\n", 0o755),
            # Debian's name for the template (upstream and RHEL call it vncserver@.service)
            "/lib/systemd/system/tigervncserver@.service": (
                unit_file(
                    "Remote desktop service (VNC) stand-in", "/usr/libexec/tigervncsession-start %i"
                ),
                0o644,
            ),
        },
        "TigerVNC's standalone server",
    ),
)
