"""Per-production environments: launchers, desktop entries, plugin wiring and production storage.

For each production in the pillar, `{install_root}/productions/<production>/` holds one POSIX sh
launcher per app command (`bin/<command>`) and the plugin wiring of each host app
(`plugins/<host>/...`); desktop entries, a menu folder and a menu fragment group the apps per
production in the applications menu; mounts go through Salt's `mount.mounted`.

One capability in four layers: `contract` (its part of the pillar schema), `plan` (what should be
on this machine, as plain data), `status` (what is there now, reading only) and `effects` (the
only code that changes the system); `render` holds the text of the files. The Salt loader modules
`modules/launchers_mod.py` and `states/launchers_mod.py` are thin wrappers around them.
"""

from salt_workstation.launchers.contract import check

__all__ = ["check"]
