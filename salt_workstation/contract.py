"""The one pillar contract: the whole `workstation` pillar, validated once, every error at its path.

`pillar` holds the core of the contract (settings, catalog, productions,
repositories) and the helpers every part uses (Issue, path_of, name checks).
Each feature contributes its part as `check(config)`. The features import
`pillar`, never this module, so the contract has no import cycle.
"""

from __future__ import annotations

from salt_workstation import display, gpu, launchers, licenses, pillar, secrets
from salt_workstation.pillar import ROOT, Issue

PARTS = (pillar.check_core, gpu.check, licenses.check, display.check, launchers.check)


def validate(config, sdb_profiles: set[str] | None = None) -> list[Issue]:
    """Every problem in the merged config, each with its pillar path and the fix.

    Secret fields may hold `sdb://<profile>/<key>` references (the features accept them as they
    are); they are checked here, once: well-formed, and, given the minion's `sdb_profiles`, naming
    a profile it defines."""
    if not isinstance(config, dict):
        return [Issue(ROOT, f"must be a mapping, got {type(config).__name__}")]
    issues = [issue for part in PARTS for issue in part(config)]
    return issues + secrets.reference_issues(config, sdb_profiles)
