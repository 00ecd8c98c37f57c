"""The stand-ins the core scenarios install: a GPU driver package with a unit, and a DCV server."""

from tests.system.aptrepo import StandIn, unit_file

STAND_INS = (
    StandIn(
        "studio-gpu-driver-standin",
        "1.0-1",
        {
            "/usr/lib/studio-standin/driver-version": (b"1.0-1\n", 0o644),
            "/lib/systemd/system/studio-standin.service": (
                unit_file("Studio GPU driver stand-in", "/bin/sleep infinity"),
                0o644,
            ),
        },
        "Stand-in for a studio GPU driver package (system tests)",
    ),
    StandIn(
        "nice-dcv-server",
        "2024.0-1",
        {
            "/usr/bin/dcvserver-standin": (
                b"#!/bin/sh\necho 'dcvserver stand-in 2024.0-1'\n",
                0o755,
            ),
            "/lib/systemd/system/dcvserver-standin.service": (
                unit_file("NICE DCV server stand-in", "/usr/bin/dcvserver-standin"),
                0o644,
            ),
        },
        "Stand-in for the NICE DCV server package (system tests)",
    ),
)
