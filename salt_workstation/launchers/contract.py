"""The launchers' part of the pillar contract: what a production's env, plugins and mounts may say.

Every problem is an Issue at its exact pillar path, with the fix. Plain data in, Issues out;
nothing here reads or writes the system.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from salt_workstation import paths, pillar
from salt_workstation.pillar import Issue, path_of


@dataclass(frozen=True)
class Host:
    """How plugins reach one host app: the variable it reads and the production's wiring folder."""

    variable: str
    path_list: (
        bool  # the variable takes a ':'-separated list, so values from env are kept after ours
    )
    folder: (
        str | None
    )  # under plugins/<host>/; None: the plugin folders themselves go on the variable


HOSTS = {
    "maya": Host("MAYA_MODULE_PATH", True, "modules"),  # <plugin>.mod files
    "houdini": Host("HOUDINI_PACKAGE_DIR", True, "packages"),  # <plugin>.json packages
    "nuke": Host("NUKE_PATH", True, None),  # each plugin folder (init.py, menu.py)
    "blender": Host("BLENDER_SYSTEM_SCRIPTS", False, "scripts"),  # scripts/addons/<module> links
}
# The launcher prints its environment instead of starting the app when this is set.
PRINT_ENV = "STUDIO_LAUNCH_PRINT_ENV"
# Set by the launcher itself; pillar env may not set them.
RESERVED_ENV = (
    "PATH",
    "STUDIO_PRODUCTION",
    "STUDIO_APP",
    "STUDIO_APP_VERSION",
    "STUDIO_MANAGED_VARS",
    "STUDIO_BASE_PATH",
    PRINT_ENV,
)
MOUNT_KEYS = ("type", "device", "path", "options", "credentials")
MOUNT_TYPES = {"nfs": "nfs", "smb": "cifs"}  # pillar type -> fstab type
CREDENTIAL_KEYS = ("username", "password", "domain")
SECRET_OPTIONS = ("credentials", "username", "user", "password", "pass", "domain")

_NFS_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:\[\]-]*:/\S*$")
_SMB_DEVICE = re.compile(r"^//[A-Za-z0-9][A-Za-z0-9.-]*/\S+$")
_OPTION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=:/+-]*$")


def mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def productions(config) -> list[tuple[str, dict, str]]:
    """(name, entry, path) for each well-formed production; pillar.check_productions reports the others."""
    found = config.get("productions")
    if not isinstance(found, dict):
        return []
    return sorted(pillar.named_entries(found, "productions", "'apps'", pillar.PRODUCTION_KEYS, []))


def catalog_spec(catalog, app, raw_version) -> dict:
    """The catalog entry of app at this version (a mapping, empty when there is none)."""
    return mapping(pillar.catalog_entry(catalog, app, str(raw_version)))


def is_plugin(entry) -> bool:
    return "host" in entry or "host_versions" in entry


def _check_env(env, path) -> list[Issue]:
    if not isinstance(env, dict):
        return [Issue(path, "must map variable names to text, e.g. {SHOW: nightfall}")]
    issues = []
    for name, value in env.items():
        if not isinstance(name, str) or not pillar.ENV_NAME.match(name):
            issues.append(
                Issue(
                    f"{path}:{name}",
                    "is not a valid environment variable name (letters, digits, _)",
                )
            )
        elif name in RESERVED_ENV:
            issues.append(
                Issue(
                    f"{path}:{name}",
                    f"{name} is set by the launcher (the production's bin folder first, "
                    "then the artist's own); remove it",
                )
            )
        if not isinstance(value, str):
            issues.append(Issue(f"{path}:{name}", f"must be text; quote it, got {value!r}"))
    return issues


def check_catalog(catalog) -> list[Issue]:
    """Plugin entries (`host`, `host_versions`) and the env names every catalog entry may use."""
    issues = []
    for app, entry in sorted(mapping(catalog).items(), key=lambda item: str(item[0])):
        for raw_version, spec in sorted(
            mapping(mapping(entry).get("versions")).items(), key=lambda i: str(i[0])
        ):
            if not isinstance(spec, dict):
                continue
            path = path_of("catalog", app, "versions", raw_version)
            env = spec.get("env")
            if isinstance(env, dict):
                issues += [
                    Issue(f"{path}:env:{name}", f"{name} is set by the launcher; remove it")
                    for name in env
                    if name in RESERVED_ENV
                ]
            if not is_plugin(spec):
                continue
            host = spec.get("host")
            if host not in HOSTS:
                issues.append(
                    Issue(
                        f"{path}:host",
                        f"must name the host app this plugin loads into: one of "
                        f"{', '.join(HOSTS)}, got {host!r}",
                    )
                )
            patterns = spec.get("host_versions")
            if (
                not isinstance(patterns, list)
                or not patterns
                or not all(isinstance(p, str) and p for p in patterns)
            ):
                issues.append(
                    Issue(
                        f"{path}:host_versions",
                        "must list the host versions this build supports, quoted: "
                        'exact ("20.5.410") or globs ("20.5.*")',
                    )
                )
            if spec.get("launchers"):
                issues.append(
                    Issue(
                        f"{path}:launchers",
                        "a plugin is loaded by its host, not launched; remove launchers",
                    )
                )
    return issues


def _plugin_issues(catalog, production, entry) -> list[Issue]:
    plugins = entry.get("plugins", {})
    plugins_path = path_of("productions", production, "plugins")
    if not isinstance(plugins, dict):
        return [
            Issue(
                plugins_path,
                'must map plugin names to quoted versions, e.g. {redshift-houdini: "3.6.05"}',
            )
        ]
    apps = mapping(entry.get("apps"))
    issues = []
    for name, raw in plugins.items():
        path = f"{plugins_path}:{name}"
        problem = pillar.name_issue(name, path, "plugin names")  # wiring files are named after it
        if problem:
            issues.append(problem)
            continue
        # The same catalog reference check the apps get, reported at the plugins path.
        found = pillar.check_reference(catalog, production, name, raw)
        apps_path = path_of("productions", production, "apps", name)
        issues += [
            Issue(issue.path.replace(apps_path, path, 1), issue.message, issue.app, issue.version)
            for issue in found
        ]
        if found:
            continue
        version, spec = str(raw), catalog_spec(catalog, name, raw)
        spec_path = path_of("catalog", name, "versions", version)
        host = spec.get("host")
        if not is_plugin(spec):
            issues.append(
                Issue(
                    path,
                    f"{name} is not a plugin ({spec_path} names no host); "
                    f"list it under {path_of('productions', production, 'apps')}",
                )
            )
            continue
        if host not in HOSTS:
            continue  # check_catalog reports it
        if host not in apps:
            issues.append(
                Issue(
                    path,
                    f"{name} {version} is a {host} plugin, but {production} has no {host} in "
                    f"{path_of('productions', production, 'apps')}; add {host} or remove the plugin",
                )
            )
            continue
        host_version = str(apps[host])
        patterns = spec.get("host_versions")
        if isinstance(patterns, list) and not any(
            isinstance(p, str) and fnmatch.fnmatchcase(host_version, p) for p in patterns
        ):
            issues.append(
                Issue(
                    path,
                    f"{name} {version} supports {host} {', '.join(map(str, patterns))} ({spec_path}:host_versions), but "
                    f"{production} uses {host} {host_version} ({path_of('productions', production, 'apps', host)}); "
                    f"pick a {name} version built for {host} {host_version}, or another {host} version",
                )
            )
    return issues


def _app_issues(catalog, production, entry) -> list[Issue]:
    """Plugins listed as apps, and two apps of one production offering the same command."""
    issues = []
    plugins = mapping(entry.get("plugins"))
    commands: dict[str, str] = {}
    for app, raw in sorted(mapping(entry.get("apps")).items(), key=lambda item: str(item[0])):
        spec = catalog_spec(catalog, app, raw)
        path = path_of("productions", production, "apps", app)
        if is_plugin(spec):
            if app not in plugins:
                issues.append(
                    Issue(
                        path,
                        f"{app} is a plugin ({spec.get('host')}); list it under "
                        f"{path_of('productions', production, 'plugins')} so its host loads it",
                    )
                )
            continue
        for command in mapping(spec.get("launchers")):
            if command in commands:
                issues.append(
                    Issue(
                        path,
                        f"command {command} comes from both {commands[command]} and {app}; "
                        "a production has one launcher per command: drop one of the apps",
                    )
                )
            commands.setdefault(command, app)
    return issues


def _wiring_issues(config, production, entry) -> list[Issue]:
    """Blender reads one system scripts folder: the launcher's, when the production has Blender plugins."""
    blender = HOSTS["blender"]
    if not any(
        catalog_spec(config.get("catalog"), name, raw).get("host") == "blender"
        for name, raw in mapping(entry.get("plugins")).items()
    ):
        return []
    issues = []
    env = mapping(entry.get("env"))
    if blender.variable in env:
        issues.append(
            Issue(
                path_of("productions", production, "env", blender.variable),
                f"{production} has Blender plugins, which the launcher links into its own "
                f"{blender.variable} folder; remove this setting",
            )
        )
    for app, raw in mapping(entry.get("apps")).items():
        if blender.variable in mapping(catalog_spec(config.get("catalog"), app, raw).get("env")):
            issues.append(
                Issue(
                    path_of("catalog", app, "versions", str(raw), "env", blender.variable),
                    f"{production} ({path_of('productions', production, 'plugins')}) has Blender plugins, "
                    f"which the launcher links into its own {blender.variable} folder; remove this setting",
                )
            )
    return issues


def _mount_issues(config, production, name, mount, path) -> list[Issue]:
    issues = []
    kind = mount.get("type")
    if kind not in MOUNT_TYPES:
        issues.append(
            Issue(f"{path}:type", f"must be one of {', '.join(MOUNT_TYPES)}, got {kind!r}")
        )
    device = mount.get("device")
    pattern, example = (
        (_SMB_DEVICE, "//server/share") if kind == "smb" else (_NFS_DEVICE, "server:/export/path")
    )
    if not isinstance(device, str) or not pattern.match(device):
        issues.append(Issue(f"{path}:device", f"must be the share as {example}, got {device!r}"))
    point = mount.get("path")
    if (
        not isinstance(point, str)
        or not point.startswith("/")
        or any(c.isspace() for c in point)
        or os.path.normpath(point) != point
    ):
        issues.append(
            Issue(
                f"{path}:path",
                f"must be an absolute, normalised mount point without spaces, e.g. "
                f"/mnt/{production}/{name}, got {point!r}",
            )
        )
    elif paths.is_system_dir(point) or PurePosixPath(point).is_relative_to(
        str(config.get("install_root"))
    ):
        issues.append(
            Issue(
                f"{path}:path",
                f"{point} is a system folder or inside install_root; mount the "
                f"production's storage on a folder of its own, e.g. /mnt/{production}/{name}",
            )
        )
    options = mount.get("options", [])
    if not isinstance(options, list) or not all(
        isinstance(o, str) and _OPTION.match(o) for o in options
    ):
        issues.append(
            Issue(
                f"{path}:options",
                "must be a list of mount options without spaces or commas, "
                "e.g. [vers=4.2, noatime]",
            )
        )
    elif any(o.split("=", 1)[0] in SECRET_OPTIONS for o in options):
        issues.append(
            Issue(
                f"{path}:options",
                "must not hold credentials; put them under "
                f"{path}:credentials (written to a 0600 file)",
            )
        )
    if "credentials" in mount:
        credentials = mount["credentials"]
        if kind != "smb":
            issues.append(
                Issue(f"{path}:credentials", "only smb mounts take credentials; remove them")
            )
        elif not isinstance(credentials, dict):
            issues.append(
                Issue(
                    f"{path}:credentials",
                    "must be a mapping with username, password and optionally domain",
                )
            )
        else:
            for key in credentials:
                if key not in CREDENTIAL_KEYS:
                    issues.append(
                        Issue(
                            f"{path}:credentials:{key}",
                            f"unknown key{pillar.did_you_mean(key, list(CREDENTIAL_KEYS))}",
                        )
                    )
            for key in ("username", "password"):
                value = credentials.get(key)
                if not isinstance(value, str) or not value or "\n" in value:
                    issues.append(
                        Issue(
                            f"{path}:credentials:{key}",
                            "is required as one line of text (quote it)",
                        )
                    )
            if "domain" in credentials and (
                not isinstance(credentials["domain"], str) or "\n" in credentials["domain"]
            ):
                issues.append(Issue(f"{path}:credentials:domain", "must be one line of text"))
    return issues


def _mount_entries(production, entry):
    """(name, raw mount, pillar path) for each well-formed `mounts:<name>`; (issues for the rest)."""
    mounts = entry.get("mounts", {})
    issues: list[Issue] = []
    if not isinstance(mounts, dict):
        return [], [
            Issue(
                path_of("productions", production, "mounts"),
                "must map mount names to {type, device, path, options, credentials}",
            )
        ]
    found = list(
        pillar.named_entries(
            mounts, f"productions:{production}:mounts", "type, device and path", MOUNT_KEYS, issues
        )
    )
    return found, issues


def valid_mounts(config, production) -> tuple[list[tuple[str, dict]], set[str] | None]:
    """(name, raw entry) of the production's valid mounts, and the names of those whose pillar entry
    is wrong (None when the whole `mounts` entry is): a wrong entry never releases a mount."""
    entry = mapping(mapping(config.get("productions")).get(production))
    prefix = path_of("productions", production, "mounts")
    issues = [
        issue
        for issue in _check_mounts(config)
        if issue.path == prefix or issue.path.startswith(prefix + ":")
    ]
    if any(issue.path == prefix for issue in issues):
        return [], None
    broken = {issue.path[len(prefix) + 1 :].split(":", 1)[0] for issue in issues}
    return [
        (name, mount)
        for name, mount, _path in _mount_entries(production, entry)[0]
        if name not in broken
    ], broken


def _check_mounts(config) -> list[Issue]:
    issues = []
    points: list[tuple[str, str]] = []  # (mount point, pillar path)
    for production, entry, _path in productions(config):
        found, problems = _mount_entries(production, entry)
        issues += problems
        for name, mount, path in found:
            issues += _mount_issues(config, production, name, mount, path)
            if isinstance(mount.get("path"), str) and mount["path"].startswith("/"):
                points.append((os.path.normpath(mount["path"]), f"{path}:path"))
    for index, (point, path) in enumerate(points):
        for other, other_path in points[:index] + points[index + 1 :]:
            if PurePosixPath(point).is_relative_to(other):
                issues.append(
                    Issue(
                        path,
                        f"{point} is also {'' if point == other else 'inside '}the mount point of "
                        f"{other_path}; give each mount a folder of its own, so productions never "
                        "see each other's storage",
                    )
                )
    return issues


def check(config) -> list[Issue]:
    """Every launchers problem in the merged config: productions' env, plugins and mounts, plugin catalog entries."""
    if not isinstance(config, dict):
        return []
    catalog = config.get("catalog")
    issues = check_catalog(catalog)
    for production, entry, path in productions(config):
        issues += _check_env(entry.get("env", {}), f"{path}:env")
        issues += _plugin_issues(catalog, production, entry)
        issues += _app_issues(catalog, production, entry)
        issues += _wiring_issues(config, production, entry)
    return issues + _check_mounts(config)


def production_issues(config, production) -> list[Issue]:
    """What stops this production's launchers: its own entry's issues and those of the catalog entries it uses."""
    entry = mapping(mapping(config.get("productions")).get(production))
    prefix = path_of("productions", production)
    used = [
        path_of("catalog", name, "versions", str(raw))
        for section in ("apps", "plugins")
        for name, raw in mapping(entry.get(section)).items()
    ]
    own = [
        issue for issue in pillar.check_settings(config) if issue.path == path_of("install_root")
    ]
    own += pillar.check_productions(
        {"catalog": config.get("catalog"), "productions": {production: entry}}
    )
    # The catalog's own checks too: a launcher command named '..' or '.' would be bin/.. or bin itself.
    for issue in check(config) + pillar.check_catalog(config.get("catalog")):
        if issue.path.startswith(f"{prefix}:mounts"):
            continue  # a wrong mount stops its mount states, not the launchers
        if (
            issue.path == prefix
            or issue.path.startswith(prefix + ":")
            or any(issue.path == p or issue.path.startswith(p + ":") for p in used)
        ):
            own.append(issue)
    return list(dict.fromkeys(own))


def usable(config) -> bool:
    """False on a pillar too broken to write or remove anything by: no productions mapping, or an
    install_root that is not a usable absolute folder (workstation.validate says why)."""
    return (
        isinstance(config, dict)
        and isinstance(config.get("productions"), dict)
        and not any(
            issue.path == path_of("install_root") for issue in pillar.check_settings(config)
        )
    )
