"""The NFS client a production mount needs (the root's apt sees only the studio repository)."""

from tests.system.aptrepo import StandIn

STAND_INS = (
    StandIn(
        "nfs-common",
        "1:2.6.2-4+standin1",
        {
            "/sbin/mount.nfs": (
                b"#!/bin/sh\necho 'mount.nfs stand-in: nothing is mounted' >&2\nexit 32\n",
                0o755,
            )
        },
        "Stand-in for the NFS client utilities (system tests)",
    ),
)
