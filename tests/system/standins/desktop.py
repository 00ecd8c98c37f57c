"""Stand-ins for the display manager workstation.xserver installs on Debian 12: gdm3.

It ships what the xserver states touch, where Debian's package puts them:
/etc/gdm3/daemon.conf with Debian's comments (WaylandEnable commented out, one
unrelated key set that the merge must keep) and gdm.service with its
display-manager alias. No X server, no GNOME.
"""

from tests.system.aptrepo import StandIn

GDM_DAEMON_CONF = b"""# GDM configuration storage (stand-in of Debian's /etc/gdm3/daemon.conf)
#
# See /usr/share/gdm/gdm.schemas for a list of available options.

[daemon]
# Uncomment the line below to force the login screen to use Xorg
#WaylandEnable=false

[security]

[xdmcp]

[chooser]

[debug]
Enable=false
"""

GDM_UNIT = b"""[Unit]
Description=GNOME Display Manager (stand-in)
Conflicts=getty@tty1.service
After=getty@tty1.service

[Service]
ExecStart=/bin/sleep infinity

[Install]
Alias=display-manager.service
"""

STAND_INS = (
    StandIn(
        "gdm3",
        "43.0-3",
        {
            "/etc/gdm3/daemon.conf": (GDM_DAEMON_CONF, 0o644),
            "/lib/systemd/system/gdm.service": (GDM_UNIT, 0o644),
        },
        "Stand-in for GNOME's display manager (system tests)",
    ),
)
