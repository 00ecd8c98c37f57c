"""Per-production environments: launchers, desktop entries, plugin wiring and production storage.

For each production in the pillar, `{install_root}/productions/<production>/` holds
one POSIX sh launcher per app command (`bin/<command>`) and the plugin wiring of
each host app (`plugins/<host>/...`); desktop entries, a menu folder and a menu
fragment group the apps per production in the applications menu. Mounts go
through Salt's `mount.mounted`. A manifest (`productions/.launchers.json`) says
what was written outside the production folders and which mounts each production
had, so that what a production leaves behind is removed and nothing else is.

Plain data in, plain data out, plus the file operations; the Salt loader modules
in modules/ and states/ are thin wrappers around this.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from salt_workstation import launchers_render as render
from salt_workstation import config as ws_config
from salt_workstation import paths, pillar, safefs, units
from salt_workstation.engine import expand
from salt_workstation.errors import WorkstationError
from salt_workstation.pillar import Issue, path_of
from salt_workstation.safefs import Dir


@dataclass(frozen=True)
class Host:
    """How plugins reach one host app: the variable it reads and the production's wiring folder."""

    variable: str
    path_list: bool  # the variable takes a ':'-separated list, so values from env are kept after ours
    folder: str | None  # under plugins/<host>/; None: the plugin folders themselves go on the variable


HOSTS = {
    "maya": Host("MAYA_MODULE_PATH", True, "modules"),       # <plugin>.mod files
    "houdini": Host("HOUDINI_PACKAGE_DIR", True, "packages"),  # <plugin>.json packages
    "nuke": Host("NUKE_PATH", True, None),                    # each plugin folder (init.py, menu.py)
    "blender": Host("BLENDER_SYSTEM_SCRIPTS", False, "scripts"),  # scripts/addons/<module> links
}
# Set by the launcher itself; pillar env may not set them.
RESERVED_ENV = ("PATH", "STUDIO_PRODUCTION", "STUDIO_APP", "STUDIO_APP_VERSION", "STUDIO_MANAGED_VARS",
                "STUDIO_BASE_PATH", render.PRINT_ENV)
MOUNT_KEYS = ("type", "device", "path", "options", "credentials")
MOUNT_TYPES = {"nfs": "nfs", "smb": "cifs"}  # pillar type -> fstab type
CREDENTIAL_KEYS = ("username", "password", "domain")
# Network mounts: wait for the network at boot, and never hold up a boot when the server is down.
NETWORK_OPTIONS = ("_netdev", "nofail")
SECRET_OPTIONS = ("credentials", "username", "user", "password", "pass", "domain")
MANIFEST = ".launchers.json"
SECRETS = ".secrets"
COMMAND = "studio-launch"
FALLBACK_ICON = "applications-graphics"
# Where an app's icon is looked for in its version folder, first found wins ({app} is the app name).
ICON_CANDIDATES = ("{app}.svg", "{app}.png", "icon.svg", "icon.png", "icons/{app}.svg", "icons/{app}.png",
                   "share/icons/hicolor/scalable/apps/{app}.svg", "share/icons/hicolor/256x256/apps/{app}.png")
# Per-OS parameters (workstation:os, overridable through workstation:lookup:os): defaults.yaml's.
OS_DEFAULTS = ws_config.defaults()["os"]

_NFS_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:\[\]-]*:/\S*$")
_SMB_DEVICE = re.compile(r"^//[A-Za-z0-9][A-Za-z0-9.-]*/\S+$")
_OPTION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=:/+-]*$")


# ---- settings and layout ------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Where the launchers write, from the merged config."""

    install_root: Path
    bin_dir: Path
    xdg_data_dir: Path
    xdg_config_dir: Path
    fstab: str
    phase: str
    mount_packages: dict

    @classmethod
    def from_config(cls, config) -> Settings:
        os_params = {**OS_DEFAULTS, **((config.get("os") or {}) if isinstance(config.get("os"), dict) else {})}
        return cls(
            install_root=Path(config["install_root"]),
            bin_dir=Path(os_params["bin_dir"]),
            xdg_data_dir=Path(os_params["xdg_data_dir"]),
            xdg_config_dir=Path(os_params["xdg_config_dir"]),
            fstab=str(os_params["fstab"]),
            phase=config.get("phase", "all"),
            mount_packages=dict(os_params["mount_packages"] or {}),
        )

    @property
    def productions(self) -> Path:
        return self.install_root / "productions"

    @property
    def manifest(self) -> Path:
        return self.productions / MANIFEST

    @property
    def command(self) -> Path:
        return self.bin_dir / COMMAND

    def production_dir(self, production: str) -> Path:
        return self.productions / production

    def production_bin(self, production: str) -> Path:
        return self.production_dir(production) / "bin"

    def wiring_dir(self, production: str, host: str) -> Path:
        return self.production_dir(production) / "plugins" / host / (HOSTS[host].folder or "")

    def credentials_file(self, production: str, mount: str) -> Path:
        return self.production_dir(production) / SECRETS / f"{mount}.credentials"

    def desktop_file(self, production: str, command: str) -> Path:
        return self.xdg_data_dir / "applications" / f"workstation-{production}-{command}.desktop"

    def directory_file(self, production: str) -> Path:
        return self.xdg_data_dir / "desktop-directories" / f"workstation-{production}.directory"

    def menu_file(self, production: str) -> Path:
        return self.xdg_config_dir / "menus" / "applications-merged" / f"workstation-{production}.menu"


# ---- validation ---------------------------------------------------------------


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def _productions(config) -> list[tuple[str, dict, str]]:
    """(name, entry, path) for each well-formed production; pillar.check_productions reports the others."""
    productions = config.get("productions")
    if not isinstance(productions, dict):
        return []
    return sorted(pillar.named_entries(productions, "productions", "'apps'", pillar.PRODUCTION_KEYS, []))


def _spec(catalog, app, raw_version) -> dict:
    return _mapping(pillar.catalog_entry(catalog, app, str(raw_version)))


def _is_plugin(spec) -> bool:
    return "host" in spec or "host_versions" in spec


def _check_env(env, path) -> list[Issue]:
    if not isinstance(env, dict):
        return [Issue(path, "must map variable names to text, e.g. {SHOW: nightfall}")]
    issues = []
    for name, value in env.items():
        if not isinstance(name, str) or not pillar.ENV_NAME.match(name):
            issues.append(Issue(f"{path}:{name}", "is not a valid environment variable name (letters, digits, _)"))
        elif name in RESERVED_ENV:
            issues.append(Issue(f"{path}:{name}", f"{name} is set by the launcher (the production's bin folder first, "
                                                  "then the artist's own); remove it"))
        if not isinstance(value, str):
            issues.append(Issue(f"{path}:{name}", f"must be text; quote it, got {value!r}"))
    return issues


def check_catalog(catalog) -> list[Issue]:
    """Plugin entries (`host`, `host_versions`) and the env names every catalog entry may use."""
    issues = []
    for app, entry in sorted(_mapping(catalog).items(), key=lambda item: str(item[0])):
        for raw_version, spec in sorted(_mapping(_mapping(entry).get("versions")).items(), key=lambda i: str(i[0])):
            if not isinstance(spec, dict):
                continue
            path = path_of("catalog", app, "versions", raw_version)
            env = spec.get("env")
            if isinstance(env, dict):
                issues += [Issue(f"{path}:env:{name}", f"{name} is set by the launcher; remove it")
                           for name in env if name in RESERVED_ENV]
            if not _is_plugin(spec):
                continue
            host = spec.get("host")
            if host not in HOSTS:
                issues.append(Issue(f"{path}:host", f"must name the host app this plugin loads into: one of "
                                                    f"{', '.join(HOSTS)}, got {host!r}"))
            patterns = spec.get("host_versions")
            if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p for p in patterns):
                issues.append(Issue(f"{path}:host_versions", "must list the host versions this build supports, quoted: "
                                                             "exact (\"20.5.410\") or globs (\"20.5.*\")"))
            if spec.get("launchers"):
                issues.append(Issue(f"{path}:launchers", "a plugin is loaded by its host, not launched; remove launchers"))
    return issues


def _plugin_issues(catalog, production, entry) -> list[Issue]:
    plugins = entry.get("plugins", {})
    plugins_path = path_of("productions", production, "plugins")
    if not isinstance(plugins, dict):
        return [Issue(plugins_path, "must map plugin names to quoted versions, e.g. {redshift-houdini: \"3.6.05\"}")]
    apps = _mapping(entry.get("apps"))
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
        issues += [Issue(issue.path.replace(apps_path, path, 1), issue.message, issue.app, issue.version)
                   for issue in found]
        if found:
            continue
        version, spec = str(raw), _spec(catalog, name, raw)
        spec_path = path_of("catalog", name, "versions", version)
        host = spec.get("host")
        if not _is_plugin(spec):
            issues.append(Issue(path, f"{name} is not a plugin ({spec_path} names no host); "
                                      f"list it under {path_of('productions', production, 'apps')}"))
            continue
        if host not in HOSTS:
            continue  # check_catalog reports it
        if host not in apps:
            issues.append(Issue(path, f"{name} {version} is a {host} plugin, but {production} has no {host} in "
                                      f"{path_of('productions', production, 'apps')}; add {host} or remove the plugin"))
            continue
        host_version = str(apps[host])
        patterns = spec.get("host_versions")
        if isinstance(patterns, list) and not any(isinstance(p, str) and fnmatch.fnmatchcase(host_version, p)
                                                  for p in patterns):
            issues.append(Issue(
                path,
                f"{name} {version} supports {host} {', '.join(map(str, patterns))} ({spec_path}:host_versions), but "
                f"{production} uses {host} {host_version} ({path_of('productions', production, 'apps', host)}); "
                f"pick a {name} version built for {host} {host_version}, or another {host} version",
            ))
    return issues


def _app_issues(catalog, production, entry) -> list[Issue]:
    """Plugins listed as apps, and two apps of one production offering the same command."""
    issues = []
    plugins = _mapping(entry.get("plugins"))
    commands: dict[str, str] = {}
    for app, raw in sorted(_mapping(entry.get("apps")).items(), key=lambda item: str(item[0])):
        spec = _spec(catalog, app, raw)
        path = path_of("productions", production, "apps", app)
        if _is_plugin(spec):
            if app not in plugins:
                issues.append(Issue(path, f"{app} is a plugin ({spec.get('host')}); list it under "
                                          f"{path_of('productions', production, 'plugins')} so its host loads it"))
            continue
        for command in _mapping(spec.get("launchers")):
            if command in commands:
                issues.append(Issue(path, f"command {command} comes from both {commands[command]} and {app}; "
                                          "a production has one launcher per command: drop one of the apps"))
            commands.setdefault(command, app)
    return issues


def _wiring_issues(config, production, entry) -> list[Issue]:
    """Blender reads one system scripts folder: the launcher's, when the production has Blender plugins."""
    blender = HOSTS["blender"]
    if not any(_spec(config.get("catalog"), name, raw).get("host") == "blender"
               for name, raw in _mapping(entry.get("plugins")).items()):
        return []
    issues = []
    env = _mapping(entry.get("env"))
    if blender.variable in env:
        issues.append(Issue(path_of("productions", production, "env", blender.variable),
                            f"{production} has Blender plugins, which the launcher links into its own "
                            f"{blender.variable} folder; remove this setting"))
    for app, raw in _mapping(entry.get("apps")).items():
        if blender.variable in _mapping(_spec(config.get("catalog"), app, raw).get("env")):
            issues.append(Issue(path_of("catalog", app, "versions", str(raw), "env", blender.variable),
                                f"{production} ({path_of('productions', production, 'plugins')}) has Blender plugins, "
                                f"which the launcher links into its own {blender.variable} folder; remove this setting"))
    return issues


@dataclass(frozen=True)
class Mount:
    """One production mount, validated."""

    production: str
    name: str
    fstype: str
    device: str
    path: str
    options: tuple
    credentials: bool


def _mount_issues(config, production, name, mount, path) -> list[Issue]:
    issues = []
    kind = mount.get("type")
    if kind not in MOUNT_TYPES:
        issues.append(Issue(f"{path}:type", f"must be one of {', '.join(MOUNT_TYPES)}, got {kind!r}"))
    device = mount.get("device")
    pattern, example = (_SMB_DEVICE, "//server/share") if kind == "smb" else (_NFS_DEVICE, "server:/export/path")
    if not isinstance(device, str) or not pattern.match(device):
        issues.append(Issue(f"{path}:device", f"must be the share as {example}, got {device!r}"))
    point = mount.get("path")
    if not isinstance(point, str) or not point.startswith("/") or any(c.isspace() for c in point) \
            or os.path.normpath(point) != point:
        issues.append(Issue(f"{path}:path", f"must be an absolute, normalised mount point without spaces, e.g. "
                                            f"/mnt/{production}/{name}, got {point!r}"))
    elif paths.is_system_dir(point) or PurePosixPath(point).is_relative_to(str(config.get("install_root"))):
        issues.append(Issue(f"{path}:path", f"{point} is a system folder or inside install_root; mount the "
                                            f"production's storage on a folder of its own, e.g. /mnt/{production}/{name}"))
    options = mount.get("options", [])
    if not isinstance(options, list) or not all(isinstance(o, str) and _OPTION.match(o) for o in options):
        issues.append(Issue(f"{path}:options", "must be a list of mount options without spaces or commas, "
                                               "e.g. [vers=4.2, noatime]"))
    elif any(o.split("=", 1)[0] in SECRET_OPTIONS for o in options):
        issues.append(Issue(f"{path}:options", "must not hold credentials; put them under "
                                               f"{path}:credentials (written to a 0600 file)"))
    if "credentials" in mount:
        credentials = mount["credentials"]
        if kind != "smb":
            issues.append(Issue(f"{path}:credentials", "only smb mounts take credentials; remove them"))
        elif not isinstance(credentials, dict):
            issues.append(Issue(f"{path}:credentials", "must be a mapping with username, password and optionally domain"))
        else:
            for key in credentials:
                if key not in CREDENTIAL_KEYS:
                    issues.append(Issue(f"{path}:credentials:{key}", f"unknown key{pillar.did_you_mean(key, list(CREDENTIAL_KEYS))}"))
            for key in ("username", "password"):
                value = credentials.get(key)
                if not isinstance(value, str) or not value or "\n" in value:
                    issues.append(Issue(f"{path}:credentials:{key}", "is required as one line of text (quote it)"))
            if "domain" in credentials and (not isinstance(credentials["domain"], str) or "\n" in credentials["domain"]):
                issues.append(Issue(f"{path}:credentials:domain", "must be one line of text"))
    return issues


def _mount_entries(production, entry):
    """(name, raw mount, pillar path) for each well-formed `mounts:<name>`; (issues for the rest)."""
    mounts = entry.get("mounts", {})
    issues: list[Issue] = []
    if not isinstance(mounts, dict):
        return [], [Issue(path_of("productions", production, "mounts"),
                          "must map mount names to {type, device, path, options, credentials}")]
    found = list(pillar.named_entries(mounts, f"productions:{production}:mounts", "type, device and path",
                                       MOUNT_KEYS, issues))
    return found, issues


def mounts(config, production) -> tuple[list[Mount], set[str] | None]:
    """The production's valid mounts, and the names of those whose pillar entry is wrong
    (None when the whole `mounts` entry is): a wrong entry never releases a mount."""
    entry = _mapping(_mapping(config.get("productions")).get(production))
    prefix = path_of("productions", production, "mounts")
    issues = [issue for issue in _check_mounts(config) if issue.path == prefix or issue.path.startswith(prefix + ":")]
    if any(issue.path == prefix for issue in issues):
        return [], None
    broken = {issue.path[len(prefix) + 1:].split(":", 1)[0] for issue in issues}
    settings = Settings.from_config(config)
    valid = []
    for name, mount, _path in _mount_entries(production, entry)[0]:
        if name in broken:
            continue
        credentials = "credentials" in mount
        options = list(dict.fromkeys([*NETWORK_OPTIONS, *mount.get("options", [])]))
        if credentials:
            options.append(f"credentials={settings.credentials_file(production, name)}")
        valid.append(Mount(production, name, MOUNT_TYPES[mount["type"]], mount["device"], mount["path"],
                           tuple(options), credentials))
    return valid, broken


def _check_mounts(config) -> list[Issue]:
    issues = []
    points: list[tuple[str, str]] = []  # (mount point, pillar path)
    for production, entry, _path in _productions(config):
        found, problems = _mount_entries(production, entry)
        issues += problems
        for name, mount, path in found:
            issues += _mount_issues(config, production, name, mount, path)
            if isinstance(mount.get("path"), str) and mount["path"].startswith("/"):
                points.append((os.path.normpath(mount["path"]), f"{path}:path"))
    for index, (point, path) in enumerate(points):
        for other, other_path in points[:index] + points[index + 1:]:
            if PurePosixPath(point).is_relative_to(other):
                issues.append(Issue(path, f"{point} is also {'' if point == other else 'inside '}the mount point of "
                                          f"{other_path}; give each mount a folder of its own, so productions never "
                                          "see each other's storage"))
    return issues


def check(config) -> list[Issue]:
    """Every launchers problem in the merged config: productions' env, plugins and mounts, plugin catalog entries."""
    if not isinstance(config, dict):
        return []
    catalog = config.get("catalog")
    issues = check_catalog(catalog)
    for production, entry, path in _productions(config):
        issues += _check_env(entry.get("env", {}), f"{path}:env")
        issues += _plugin_issues(catalog, production, entry)
        issues += _app_issues(catalog, production, entry)
        issues += _wiring_issues(config, production, entry)
    return issues + _check_mounts(config)


def production_issues(config, production) -> list[Issue]:
    """What stops this production's launchers: its own entry's issues and those of the catalog entries it uses."""
    entry = _mapping(_mapping(config.get("productions")).get(production))
    prefix = path_of("productions", production)
    used = [path_of("catalog", name, "versions", str(raw))
            for section in ("apps", "plugins") for name, raw in _mapping(entry.get(section)).items()]
    own = [issue for issue in pillar.check_settings(config) if issue.path == path_of("install_root")]
    own += pillar.check_productions({"catalog": config.get("catalog"), "productions": {production: entry}})
    # The catalog's own checks too: a launcher command named '..' or '.' would be bin/.. or bin itself.
    for issue in check(config) + pillar.check_catalog(config.get("catalog")):
        if issue.path.startswith(f"{prefix}:mounts"):
            continue  # a wrong mount stops its mount states, not the launchers
        if issue.path == prefix or issue.path.startswith(prefix + ":") or \
                any(issue.path == p or issue.path.startswith(p + ":") for p in used):
            own.append(issue)
    return list(dict.fromkeys(own))


# ---- what a production's launchers are -------------------------------------------


@dataclass
class Launcher:
    """One command of one app in one production."""

    production: str
    command: str
    app: str
    version: str
    title: str
    target: str
    on_path: bool  # an OS-package app's command, looked up on the artist's PATH
    env: dict = field(default_factory=dict)
    desktop: bool = False
    version_dir: Path | None = None


def _expanded(env, dest) -> dict:
    return {name: expand(value, dest=dest) for name, value in _mapping(env).items()}


def merge_license_environments(environments) -> dict:
    """License variables of several apps: the same variable's servers joined with ':' (FlexLM, RLM)."""
    merged: dict[str, str] = {}
    for environment in environments:
        for name, value in _mapping(environment).items():
            if not isinstance(name, str) or not pillar.ENV_NAME.match(name) or not isinstance(value, str) \
                    or name in RESERVED_ENV:
                continue
            if name not in merged:
                merged[name] = value
            elif value not in merged[name].split(":"):
                merged[name] += ":" + value
    return merged


def _plugins_of(config, production, host) -> list[tuple[str, str, dict]]:
    entry = _mapping(_mapping(config.get("productions")).get(production))
    found = []
    for name, raw in sorted(_mapping(entry.get("plugins")).items()):
        spec = _spec(config.get("catalog"), name, raw)
        if spec.get("host") == host:
            found.append((name, str(raw), spec))
    return found


def launchers(config, production, license_environment=None) -> list[Launcher]:
    """Every launcher of a (validated) production, with its complete environment.

    The environment, later sources winning: the env of the production's apps that
    have no launchers (configs such as OCIO), the app version's env, the license
    environment of the app and its plugins, the plugins' env, the production's env;
    then the host's plugin variable (wiring folder first, values from env after it),
    then STUDIO_PRODUCTION, STUDIO_APP, STUDIO_APP_VERSION.
    """
    settings = Settings.from_config(config)
    layout = paths.Layout(settings.install_root)
    catalog = config.get("catalog")
    entry = _mapping(_mapping(config.get("productions")).get(production))
    apps = sorted((str(app), str(raw)) for app, raw in _mapping(entry.get("apps")).items())
    license_environment = license_environment or (lambda app, version: {})
    shared: dict[str, str] = {}
    for app, version in apps:
        spec = _spec(catalog, app, version)
        if not spec.get("launchers") and not _is_plugin(spec):
            shared.update(_expanded(spec.get("env"), layout.version_dir(app, version)))
    result = []
    for app, version in apps:
        spec = _spec(catalog, app, version)
        if not spec.get("launchers") or _is_plugin(spec):
            continue
        dest = layout.version_dir(app, version)
        plugins = _plugins_of(config, production, app)
        env = {**shared, **_expanded(spec.get("env"), dest)}
        env.update(merge_license_environments(
            [license_environment(app, version)] + [license_environment(name, v) for name, v, _ in plugins]))
        for name, plugin_version, plugin_spec in plugins:
            env.update(_expanded(plugin_spec.get("env"), layout.version_dir(name, plugin_version)))
        env.update(_mapping(entry.get("env")))
        if plugins and app in HOSTS:
            host = HOSTS[app]
            if host.folder:
                ours = [str(settings.wiring_dir(production, app))]
            else:
                ours = [str(layout.version_dir(name, v)) for name, v, _ in plugins]
            if host.path_list and env.get(host.variable):
                ours.append(env[host.variable])
            env[host.variable] = ":".join(ours)
        env.update(STUDIO_PRODUCTION=production, STUDIO_APP=app, STUDIO_APP_VERSION=version)
        env = dict(sorted(env.items()))
        commands = _mapping(spec.get("launchers"))
        main = app if app in commands else sorted(commands)[0]
        packages = spec.get("kind") == "packages"
        for command, target in sorted(commands.items()):
            on_path = packages and not str(target).startswith("/")
            result.append(Launcher(
                production=production, command=command, app=app, version=version,
                title=str(_mapping(_mapping(catalog).get(app)).get("name") or app),
                target=str(target) if packages else str(dest / target), on_path=on_path,
                env=env, desktop=command == main, version_dir=dest,
            ))
    return result


def find_icon(version_dir: Path, app: str) -> str | None:
    """The app's icon inside its version folder (ICON_CANDIDATES), when there is one."""
    for candidate in ICON_CANDIDATES:
        path = version_dir / candidate.format(app=app)
        if path.is_file() and paths.is_inside(version_dir, path):
            return str(path)
    return None


@dataclass(frozen=True)
class Entry:
    """One file the launchers keep: its bytes and mode, or a symbolic link's target."""

    data: bytes = b""
    mode: int = 0o644
    link: str | None = None


def desired_files(config, production, license_environment=None, icon=find_icon) -> dict[Path, Entry]:
    """Every file of the production: launchers, plugin wiring, desktop entry, menu folder and fragment."""
    settings = Settings.from_config(config)
    layout = paths.Layout(settings.install_root)
    files: dict[Path, Entry] = {}
    bin_dir = settings.production_bin(production)
    items = launchers(config, production, license_environment)
    for launcher in items:
        path = bin_dir / safefs.component(launcher.command, "launcher command")
        files[path] = Entry(render.wrapper(
            production=production, app=launcher.app, version=launcher.version, command=launcher.command,
            target=launcher.target, on_path=launcher.on_path, env=launcher.env, production_bin=str(bin_dir),
        ).encode(), 0o755)
        if launcher.desktop:
            files[settings.desktop_file(production, launcher.command)] = Entry(render.desktop_entry(
                production=production, title=launcher.title, version=launcher.version, command=launcher.command,
                app=launcher.app, launcher=str(path), icon=icon(launcher.version_dir, launcher.app) or FALLBACK_ICON,
            ).encode())
    if items:
        directory = settings.directory_file(production)
        files[directory] = Entry(render.directory_entry(production).encode())
        files[settings.menu_file(production)] = Entry(render.menu(production, directory.name).encode())
    for host in HOSTS:
        for name, version, _spec_ in _plugins_of(config, production, host):
            plugin_dir = str(layout.version_dir(name, version))
            wiring = settings.wiring_dir(production, host)
            if host == "maya":
                files[wiring / f"{name}.mod"] = Entry(render.maya_module(name, version, plugin_dir).encode())
            elif host == "houdini":
                files[wiring / f"{name}.json"] = Entry(render.houdini_package(plugin_dir).encode())
            elif host == "blender":
                files[wiring / "addons" / re.sub(r"[^A-Za-z0-9_]", "_", name)] = Entry(link=plugin_dir)
    return files


def ensure_credentials(config, production, mount, test: bool, path: Path | None = None) -> bool:
    """Keep the mount's SMB credentials file (0600, in a 0700 folder); True when it was (or would be) changed."""
    settings = Settings.from_config(config)
    root = settings.install_root
    path = path or settings.credentials_file(production, mount)
    entry = credentials_entry(config, production, mount)
    folder = _folder(path.parent, root)
    folder_open = False
    if folder is not None:
        with folder:
            folder_open = stat.S_IMODE(os.fstat(folder.fd).st_mode) != 0o700
    if matches(path, entry, root) and not folder_open:
        return False
    if not test:
        with _folder(path.parent.parent, root, create=True) as parent:
            parent.child(path.parent.name, create=True, mode=0o700).close()
            parent.chmod(path.parent.name, 0o700)  # the umask may have taken bits away, or it was open
        write_entry(path, entry, root)
    return True


def credentials_entry(config, production, mount) -> Entry | None:
    """The SMB credentials file's content (0600); None when the mount has none. Holds a secret."""
    raw = _mapping(_mapping(_mapping(_mapping(config.get("productions")).get(production)).get("mounts")).get(mount))
    credentials = raw.get("credentials")
    if not isinstance(credentials, dict):
        return None
    return Entry(render.smb_credentials(credentials["username"], credentials["password"],
                                        credentials.get("domain")).encode(), 0o600)


# ---- the manifest: what was written before -------------------------------------------


def read_manifest(settings: Settings) -> dict:
    """{production: {"outside": [paths], "mounts": [{name, path, device}]}} as last written."""
    try:
        folder = _folder(settings.productions, settings.install_root)
        if folder is None:
            return {}
        with folder:
            data = json.loads(folder.read_bytes(MANIFEST) or b"null")
    except (OSError, ValueError, WorkstationError):
        return {}
    productions = data.get("productions") if isinstance(data, dict) else None
    return productions if isinstance(productions, dict) else {}


def _write_manifest(settings: Settings, manifest: dict) -> None:
    data = json.dumps({"productions": manifest}, indent=1, sort_keys=True).encode() + b"\n"
    write_entry(settings.manifest, Entry(data, 0o644), settings.install_root)


def mount_record(mount: Mount) -> dict:
    return {"name": mount.name, "path": mount.path, "device": mount.device}


def mount_records(config, production, previous: dict) -> list[dict]:
    """The mounts to remember for a production: its valid ones, and the last known state of broken ones."""
    valid, broken = mounts(config, production)
    remembered = [m for m in previous.get("mounts", [])
                  if isinstance(m, dict) and (broken is None or m.get("name") in broken)]
    return sorted([mount_record(m) for m in valid] + remembered, key=lambda m: (str(m.get("name")), str(m.get("path"))))


def released_mounts(config, manifest: dict) -> list[tuple[str, dict]]:
    """(production, record) for each recorded mount that the pillar no longer asks for at that path."""
    productions = _mapping(config.get("productions"))
    released = []
    for production in sorted(manifest):
        records = [m for m in manifest[production].get("mounts", []) if isinstance(m, dict)]
        keep = mount_records(config, production, manifest[production]) if production in productions else []
        if production in productions and not isinstance(productions[production], dict):
            keep = records  # a wrong entry releases nothing
        kept = {(m["name"], m["path"]) for m in keep}
        released += [(production, m) for m in records if (m.get("name"), m.get("path")) not in kept]
    return released


# ---- writing and removing ----------------------------------------------------------


# Below install_root every step is taken through folder descriptors, never through a link
# (safefs): a link planted where a production's folder or its bin belongs fails the run, naming
# its path, and what it points to is never read, written or removed. A file outside install_root
# (desktop entries, menus, studio-launch) has its own folder as its managed root.


def _folder(path: Path, root: Path | None, create: bool = False) -> Dir | None:
    """The folder `path`, opened: below `root` without following a link, elsewhere as configured.
    None when it is not there (and not to be made; made folders are 0755)."""
    try:
        if root is not None and path.is_relative_to(root):
            with Dir.root(root, create=create) as top:
                return top.descend(*path.relative_to(root).parts, create=create)
        return Dir.root(path, create=create)
    except FileNotFoundError:
        return None


def matches(path: Path, entry: Entry, root: Path | None = None) -> bool:
    """True when path already is exactly this entry (bytes and mode, or link target).

    A folder where the entry belongs is refused here, so that a run stops before it changes anything.
    """
    folder = _folder(path.parent, root)
    if folder is None:
        return False
    with folder:
        info = folder.lstat(path.name)
        if info is None:
            return False
        if stat.S_ISDIR(info.st_mode):
            raise WorkstationError(f"{path} is a folder; salt-workstation writes a file there. "
                                   "Move the folder aside, then apply again")
        if entry.link is not None:
            return stat.S_ISLNK(info.st_mode) and folder.readlink(path.name) == entry.link
        if not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) != entry.mode:
            return False
        return folder.read_bytes(path.name) == entry.data


def write_entry(path: Path, entry: Entry, root: Path | None = None) -> None:
    """Write atomically (safefs: a temporary beside it, mode from the first byte, one rename);
    a link in its place is replaced, never written through."""
    with _folder(path.parent, root, create=True) as folder:
        if entry.link is not None:
            folder.symlink(path.name, entry.link)
        else:
            folder.write_file(path.name, entry.data, entry.mode)


def ensure(path: Path, entry: Entry, test: bool, root: Path | None = None) -> bool:
    """Make path this entry; True when it was (or, under test, would be) changed."""
    if matches(path, entry, root):
        return False
    if not test:
        write_entry(path, entry, root)
    return True


def _removable_mount_point(path: str, test: bool) -> bool:
    """An emptied folder where a released mount was (under test, a mount still there counts as emptied)."""
    point = Path(path)
    if point.is_symlink() or not point.is_dir():
        return False
    if test and os.path.ismount(point):
        return True
    return not os.path.ismount(point) and not any(point.iterdir())


def _managed_files(settings: Settings, production: str) -> list[Path]:
    """Every file and link below the production's bin, plugins and .secrets folders."""
    production_dir = settings.production_dir(production)
    folder = _folder(production_dir, settings.install_root)
    if folder is None:
        return []
    found = []
    with folder:
        for top in ("bin", "plugins", SECRETS):
            if not folder.exists(top):
                continue
            with folder.child(top) as below:  # a link or a file there is refused, naming its path
                found += [production_dir / top / entry.rel for entry in below.walk() if not entry.is_dir]
    return found


def _remove(path: Path, root: Path | None) -> None:
    """Remove a file or link (never what it points to), or an emptied folder that is no mount point."""
    folder = _folder(path.parent, root)
    if folder is None:
        return
    with folder:
        info = folder.lstat(path.name)
        if info is None:
            return
        if stat.S_ISDIR(info.st_mode):
            folder.remove_empty_dir(path.name)  # the kernel refuses a mount point or a folder with anything in it
        else:
            folder.remove(path.name)
        folder.fsync()


def sync(config, production, files: dict[Path, Entry], test: bool) -> dict:
    """Bring one production's files to `files`; remove what it no longer has. Returns the changes.

    Everything is compared before anything is changed, so a link or folder in the way fails the
    run with nothing touched; then the files are written before the old ones are removed.
    """
    settings = Settings.from_config(config)
    root = settings.install_root
    production_dir = settings.production_dir(production)
    manifest = read_manifest(settings)
    previous = _mapping(manifest.get(production))
    records = mount_records(config, production, previous)
    keep = {settings.credentials_file(production, m.name) for m in mounts(config, production)[0] if m.credentials}
    removed = [path for path in _managed_files(settings, production) if path not in files and path not in keep]
    written = sorted(path for path, entry in files.items() if not matches(path, entry, root))
    removed += [Path(p) for p in previous.get("outside", []) if Path(p) not in files and os.path.lexists(p)]
    kept_mounts = {(m["name"], m["path"]) for m in records}
    removed += [Path(m["path"]) for m in previous.get("mounts", []) if isinstance(m, dict)
                and (m.get("name"), m.get("path")) not in kept_mounts and _removable_mount_point(m["path"], test)]
    removed = sorted(set(removed))
    if not test:
        for path in written:
            write_entry(path, files[path], root)
        for path in removed:
            _remove(path, root)
        folder = _folder(production_dir, root)
        if folder is not None:
            with folder:
                folder.remove_empty_dirs()
        outside = sorted(str(p) for p in files if not p.is_relative_to(production_dir))
        record = {"outside": outside, "mounts": records}
        if manifest.get(production) != record:
            manifest[production] = record
            _write_manifest(settings, manifest)
    changes = {}
    if written:
        changes["written"] = [str(p) for p in written]
    if removed:
        changes["removed"] = [str(p) for p in removed]
    return changes


def _has_folder(productions: Dir | None, production: str) -> bool:
    """True when the production's folder is there; a link or a file in its place is UnsafePath."""
    if productions is None or productions.lstat(production) is None:
        return False
    productions.child(production).close()
    return True


def prune(config, keep, test: bool) -> list[str]:
    """Remove what the manifest says productions not in `keep` left: their folder, desktop files, mount points.

    It also remembers the mounts the kept productions ask for, even where their launchers
    could not be written this time, so that a mount is always released once unwanted.
    Every production folder is checked before anything is removed: a link in the place of
    one fails the run (UnsafePath), and neither it nor what it points to is removed.
    """
    settings = Settings.from_config(config)
    root = settings.install_root
    manifest = read_manifest(settings)
    before = json.dumps(manifest, sort_keys=True)
    gone = sorted(set(manifest) - set(keep))
    removed: list[Path] = []
    productions = _folder(settings.productions, root) if gone else None
    try:
        folders = [production for production in gone if _has_folder(productions, production)]
        for production in gone:
            record = _mapping(manifest[production])
            elsewhere = [Path(p) for p in record.get("outside", []) if os.path.lexists(p)]
            elsewhere += [Path(m["path"]) for m in record.get("mounts", []) if isinstance(m, dict)
                          and _removable_mount_point(m.get("path", ""), test)]
            if production in folders:
                removed.append(settings.production_dir(production))
            removed += elsewhere
            if not test:
                if production in folders:
                    productions.remove(production)  # never through a link, never across a mount
                    productions.fsync()
                for path in elsewhere:
                    _remove(path, root)
                del manifest[production]
    finally:
        if productions is not None:
            productions.close()
    for production in keep:
        wanted = [mount_record(m) for m in mounts(config, production)[0]]
        if wanted:
            record = manifest.setdefault(production, {"outside": [], "mounts": []})
            known = {(m.get("name"), m.get("path")) for m in record.get("mounts", []) if isinstance(m, dict)}
            record["mounts"] = sorted(record.get("mounts", []) + [m for m in wanted if (m["name"], m["path"]) not in known],
                                      key=lambda m: (str(m.get("name")), str(m.get("path"))))
    if not test and json.dumps(manifest, sort_keys=True) != before:
        _write_manifest(settings, manifest)
    return sorted(str(p) for p in removed)


# ---- the formula's data ----------------------------------------------------------------


def _requiring(requisites) -> list[dict]:
    return [{"require": requisites}] if requisites else []


def formula_data(config, manifest: dict) -> dict:
    """The states `workstation.launchers` renders, in order, each {id, function, args}.

    Mounts released first (recorded by an earlier apply, no longer wanted there),
    then per production its SMB credentials, mounts and launchers, then the removal
    of productions that left the pillar, then `studio-launch`.
    """
    if not isinstance(config.get("productions"), dict) or \
            any(issue.path == path_of("install_root") for issue in pillar.check_settings(config)):
        return {"states": []}  # nothing is written or removed on a pillar this broken; validation says why
    settings = Settings.from_config(config)
    installs = {(w.app, w.version): w.state_id for w in pillar.wanted_versions(config)}
    productions = _productions(config)
    keep = sorted(str(name) for name in config["productions"])  # a wrong entry still keeps its production
    states: list[dict] = []
    wanted_mounts = {name: mounts(config, name)[0] for name, _entry, _path in productions}
    clients = sorted({settings.mount_packages.get(kind) for kind, fstype in MOUNT_TYPES.items()
                      for found in wanted_mounts.values() for m in found if m.fstype == fstype} - {None, ""})
    clients_id = "workstation-launchers-mount-clients"
    if clients:
        states.append(units.state(clients_id, "dcc.packages_installed", name="production storage clients",
                                  packages=dict.fromkeys(clients)))
    releases: dict[str, list] = {}
    for production, record in released_mounts(config, manifest):
        state_id = f"workstation-launchers-{production}-unmount-{record['name']}"
        releases.setdefault(production, []).append({"mount": state_id})
        states.append({"id": state_id, "function": "mount.unmounted", "args": [
            {"name": record["path"]}, {"device": record.get("device")}, {"persist": True}, {"config": settings.fstab}]})
    for production, entry, _path in productions:
        for mount in wanted_mounts[production]:
            state_id = f"workstation-launchers-{production}-mount-{mount.name}"
            require = [{"dcc": clients_id}] if clients else []
            if mount.credentials:
                states.append({"id": f"{state_id}-credentials", "function": "launchers.credentials", "args": [
                    {"name": str(settings.credentials_file(production, mount.name))},
                    {"production": production}, {"mount": mount.name}]})
                require.append({"launchers": f"{state_id}-credentials"})
            states.append({"id": state_id, "function": "mount.mounted", "args": [
                {"name": mount.path}, {"device": mount.device}, {"fstype": mount.fstype}, {"opts": list(mount.options)},
                {"mkmnt": True}, {"persist": True}, {"mount": settings.phase != "bake"}, {"config": settings.fstab},
                *_requiring(require)]})
        uses = [(str(app), str(raw)) for section in ("apps", "plugins")
                for app, raw in _mapping(entry.get(section)).items()]
        require = [{"dcc": installs[use]} for use in sorted(set(uses)) if use in installs]
        require += releases.get(production, [])
        states.append({"id": f"workstation-launchers-{production}", "function": "launchers.managed",
                       "args": [{"name": production}, *_requiring(require)]})
    gone = [ref for production, refs in releases.items() if production not in keep for ref in refs]
    states.append({"id": "workstation-launchers-pruned", "function": "launchers.pruned",
                   "args": [{"name": str(settings.productions)}, {"keep": keep}, *_requiring(gone)]})
    if keep or manifest:  # a machine that never had a production gets no studio-launch
        states.append({"id": "workstation-launchers-studio-launch", "function": "launchers.command",
                       "args": [{"name": str(settings.command)}]})
    return {"states": states}
