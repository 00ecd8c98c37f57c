"""What should be on this machine for each production: its launchers, plugin wiring, desktop
entries, storage, and the data `workstation.launchers` lays its states out from.

Plain data from the merged config (and, for what an earlier apply left, the manifest it wrote).
Nothing here reads or writes the system: `status` reads what is there, `effects` changes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from salt_workstation import config as ws_config
from salt_workstation import paths, pillar, safefs, secrets
from salt_workstation.engine import expand
from salt_workstation.errors import WorkstationError
from salt_workstation.launchers import render
from salt_workstation.launchers.contract import (
    HOSTS,
    MOUNT_TYPES,
    RESERVED_ENV,
    catalog_spec,
    is_plugin,
    mapping,
    productions,
    usable,
    valid_mounts,
)

MANIFEST = ".launchers.json"
SECRETS = ".secrets"
COMMAND = "studio-launch"
FALLBACK_ICON = "applications-graphics"
# Network mounts: wait for the network at boot, and never hold up a boot when the server is down.
NETWORK_OPTIONS = ("_netdev", "nofail")
# Per-OS parameters (workstation:os, overridable through workstation:lookup:os): defaults.yaml's.
OS_DEFAULTS = ws_config.defaults()["os"]


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
        os_params = {
            **OS_DEFAULTS,
            **((config.get("os") or {}) if isinstance(config.get("os"), dict) else {}),
        }
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
        return (
            self.xdg_config_dir / "menus" / "applications-merged" / f"workstation-{production}.menu"
        )


def place(folder: Path, root: Path | None) -> tuple:
    """How a folder is opened: (root, *names below it). Below `root` (install_root) one step at a time,
    never through a link; elsewhere (desktop entries, menus, studio-launch) its own folder is its root."""
    if root is not None and folder.is_relative_to(root):
        return (root, *folder.relative_to(root).parts)
    return (folder,)


@dataclass(frozen=True)
class Entry:
    """One file the launchers keep: its bytes and mode, or a symbolic link's target."""

    data: bytes = b""
    mode: int = 0o644
    link: str | None = None


# ---- storage ---------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    """One production mount, validated, with its fstab options."""

    production: str
    name: str
    fstype: str
    device: str
    path: str
    options: tuple
    credentials_file: str | None  # SMB only: the 0600 file mount.cifs reads (credentials=<file>)


def mounts(config, production) -> tuple[list[Mount], set[str] | None]:
    """The production's valid mounts, and the names of those whose pillar entry is wrong
    (None when the whole `mounts` entry is): a wrong entry never releases a mount."""
    found, broken = valid_mounts(config, production)
    settings = Settings.from_config(config)
    valid = []
    for name, mount in found:
        options = list(dict.fromkeys([*NETWORK_OPTIONS, *mount.get("options", [])]))
        credentials = (
            str(settings.credentials_file(production, name)) if "credentials" in mount else None
        )
        if credentials:
            options.append(f"credentials={credentials}")
        valid.append(
            Mount(
                production,
                name,
                MOUNT_TYPES[mount["type"]],
                mount["device"],
                mount["path"],
                tuple(options),
                credentials,
            )
        )
    return valid, broken


def mount_record(mount: Mount) -> dict:
    return {"name": mount.name, "path": mount.path, "device": mount.device}


def by_name(records) -> list[dict]:
    """Mount records in a stable order: by name, then path."""
    return sorted(records, key=lambda m: (str(m.get("name")), str(m.get("path"))))


def mount_records(config, production, previous: dict) -> list[dict]:
    """The mounts to remember for a production: its valid ones, and the last known state of broken ones."""
    valid, broken = mounts(config, production)
    remembered = [
        m
        for m in previous.get("mounts", [])
        if isinstance(m, dict) and (broken is None or m.get("name") in broken)
    ]
    return by_name([mount_record(m) for m in valid] + remembered)


def released_mounts(config, manifest: dict) -> list[tuple[str, dict]]:
    """(production, record) for each recorded mount that the pillar no longer asks for at that path."""
    wanted = mapping(config.get("productions"))
    released = []
    for production in sorted(manifest):
        records = [
            m for m in mapping(manifest[production]).get("mounts", []) if isinstance(m, dict)
        ]
        keep = (
            mount_records(config, production, manifest[production]) if production in wanted else []
        )
        if production in wanted and not isinstance(wanted[production], dict):
            keep = records  # a wrong entry releases nothing
        kept = {(m["name"], m["path"]) for m in keep}
        released += [(production, m) for m in records if (m.get("name"), m.get("path")) not in kept]
    return released


def credentials_entry(config, production, mount, resolve=None) -> Entry | None:
    """The SMB credentials file's content (0600); None when the mount has none. Holds a secret.

    `resolve(uri)` reads an `sdb://` reference among the credentials (Salt's `sdb.get` on the minion,
    handed in by the execution module at the moment the file is written)."""
    raw = mapping(
        mapping(mapping(mapping(config.get("productions")).get(production)).get("mounts")).get(
            mount
        )
    )
    credentials = raw.get("credentials")
    if not isinstance(credentials, dict):
        return None
    where = pillar.path_of("productions", production, "mounts", mount, "credentials")
    found = {
        key: secrets.reveal(credentials[key], f"{where}:{key}", resolve)
        for key in ("username", "password", "domain")
        if credentials.get(key) is not None
    }
    for key, value in found.items():
        if not isinstance(value, str) or "\n" in value:
            raise WorkstationError(
                f"{where}:{key} must be one line of text (the value is not shown)"
            )
    return Entry(
        render.smb_credentials(found["username"], found["password"], found.get("domain")).encode(),
        0o600,
    )


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
    return {name: expand(value, dest=dest) for name, value in mapping(env).items()}


def merge_license_environments(environments) -> dict:
    """License variables of several apps: the same variable's servers joined with ':' (FlexLM, RLM)."""
    merged: dict[str, str] = {}
    for environment in environments:
        for name, value in mapping(environment).items():
            if (
                not isinstance(name, str)
                or not pillar.ENV_NAME.match(name)
                or not isinstance(value, str)
                or name in RESERVED_ENV
            ):
                continue
            if name not in merged:
                merged[name] = value
            elif value not in merged[name].split(":"):
                merged[name] += ":" + value
    return merged


def _plugins_of(config, production, host) -> list[tuple[str, str, dict]]:
    entry = mapping(mapping(config.get("productions")).get(production))
    found = []
    for name, raw in sorted(mapping(entry.get("plugins")).items()):
        spec = catalog_spec(config.get("catalog"), name, raw)
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
    entry = mapping(mapping(config.get("productions")).get(production))
    apps = sorted((str(app), str(raw)) for app, raw in mapping(entry.get("apps")).items())
    license_environment = license_environment or (lambda app, version: {})
    shared: dict[str, str] = {}
    for app, version in apps:
        spec = catalog_spec(catalog, app, version)
        if not spec.get("launchers") and not is_plugin(spec):
            shared.update(_expanded(spec.get("env"), layout.version_dir(app, version)))
    result = []
    for app, version in apps:
        spec = catalog_spec(catalog, app, version)
        if not spec.get("launchers") or is_plugin(spec):
            continue
        dest = layout.version_dir(app, version)
        plugins = _plugins_of(config, production, app)
        env = {**shared, **_expanded(spec.get("env"), dest)}
        env.update(
            merge_license_environments(
                [license_environment(app, version)]
                + [license_environment(name, v) for name, v, _ in plugins]
            )
        )
        for name, plugin_version, plugin_spec in plugins:
            env.update(_expanded(plugin_spec.get("env"), layout.version_dir(name, plugin_version)))
        env.update(mapping(entry.get("env")))
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
        commands = mapping(spec.get("launchers"))
        main = app if app in commands else sorted(commands)[0]
        packages = spec.get("kind") == "packages"
        for command, target in sorted(commands.items()):
            on_path = packages and not str(target).startswith("/")
            result.append(
                Launcher(
                    production=production,
                    command=command,
                    app=app,
                    version=version,
                    title=str(mapping(mapping(catalog).get(app)).get("name") or app),
                    target=str(target) if packages else str(dest / target),
                    on_path=on_path,
                    env=env,
                    desktop=command == main,
                    version_dir=dest,
                )
            )
    return result


def desired_files(config, production, license_environment=None, icon=None) -> dict[Path, Entry]:
    """Every file of the production: launchers, plugin wiring, desktop entry, menu folder and fragment.

    license_environment(app, version): the license servers' variables; icon(version_dir, app): the
    app's icon file (status.find_icon), else the theme's FALLBACK_ICON.
    """
    settings = Settings.from_config(config)
    layout = paths.Layout(settings.install_root)
    files: dict[Path, Entry] = {}
    bin_dir = settings.production_bin(production)
    items = launchers(config, production, license_environment)
    for launcher in items:
        path = bin_dir / safefs.component(launcher.command, "launcher command")
        files[path] = Entry(
            render.wrapper(
                production=production,
                app=launcher.app,
                version=launcher.version,
                command=launcher.command,
                target=launcher.target,
                on_path=launcher.on_path,
                env=launcher.env,
                production_bin=str(bin_dir),
            ).encode(),
            0o755,
        )
        if launcher.desktop:
            found = icon(launcher.version_dir, launcher.app) if icon else None
            files[settings.desktop_file(production, launcher.command)] = Entry(
                render.desktop_entry(
                    production=production,
                    title=launcher.title,
                    version=launcher.version,
                    command=launcher.command,
                    app=launcher.app,
                    launcher=str(path),
                    icon=found or FALLBACK_ICON,
                ).encode()
            )
    if items:
        directory = settings.directory_file(production)
        files[directory] = Entry(render.directory_entry(production).encode())
        files[settings.menu_file(production)] = Entry(
            render.menu(production, directory.name).encode()
        )
    for host in HOSTS:
        for name, version, _spec in _plugins_of(config, production, host):
            plugin_dir = str(layout.version_dir(name, version))
            wiring = settings.wiring_dir(production, host)
            if host == "maya":
                files[wiring / f"{name}.mod"] = Entry(
                    render.maya_module(name, version, plugin_dir).encode()
                )
            elif host == "houdini":
                files[wiring / f"{name}.json"] = Entry(render.houdini_package(plugin_dir).encode())
            elif host == "blender":
                files[wiring / "addons" / re.sub(r"[^A-Za-z0-9_]", "_", name)] = Entry(
                    link=plugin_dir
                )
    return files


def studio_launch_entry(settings: Settings) -> Entry:
    """`studio-launch`, for this machine's productions folder."""
    return Entry(render.studio_launch(str(settings.productions)).encode(), 0o755)


@dataclass
class Changes:
    """What bringing the machine to the plan changes (status finds it, effects makes it)."""

    written: dict[Path, Entry] = field(default_factory=dict)  # each path and what it becomes
    removed: list[Path] = field(
        default_factory=list
    )  # files, links, emptied folders and mount points
    folders: list[Path] = field(default_factory=list)  # production folders removed whole
    manifest: dict | None = None  # the manifest afterwards; None: it stays as it is

    def report(self) -> dict:
        """The changes as a state reports them: {"written": [paths], "removed": [paths]}, empty keys left out."""
        found = {
            "written": sorted(map(str, self.written)),
            "removed": sorted(map(str, [*self.folders, *self.removed])),
        }
        return {key: paths_ for key, paths_ in found.items() if paths_}


# ---- the formula's data ------------------------------------------------------------


def formula(config, manifest: dict) -> dict:
    """The data `workstation.launchers` lays its states out from: plain data, never states.

    Storage clients to install, mounts to release (recorded by an earlier apply, no longer wanted
    there), per production its mounts and the app versions whose installs its launchers wait for,
    the productions to keep, and whether the machine gets `studio-launch`. On a pillar too broken
    to write or remove anything by, every list is empty and every boolean False.
    """
    data = {
        "usable": False,
        "storage": False,
        "mount_clients": {},
        "released": [],
        "productions": [],
        "keep": [],
        "released_by_gone": [],
        "productions_dir": "",
        "studio_launch": False,
        "command": "",
        "fstab": "",
        "mount_now": False,
    }
    if not usable(config):
        return data
    settings = Settings.from_config(config)
    keep = sorted(
        str(name) for name in config["productions"]
    )  # a wrong entry still keeps its production
    released = [
        {
            "production": production,
            "name": m.get("name"),
            "path": m.get("path"),
            "device": m.get("device"),
        }
        for production, m in released_mounts(config, manifest)
        if not pillar.name_issue(production, "") and not pillar.name_issue(m.get("name"), "")
    ]  # IDs
    for production, entry, _path in productions(config):
        uses = sorted(
            {
                (str(app), str(raw))
                for section in ("apps", "plugins")
                for app, raw in mapping(entry.get(section)).items()
            }
        )
        releases = [r["name"] for r in released if r["production"] == production]
        data["productions"].append(
            {
                "name": production,
                "uses": [
                    {"app": app, "version": version} for app, version in uses
                ],  # each a workstation-app-* state
                "released": releases,
                "waits": bool(
                    uses or releases
                ),  # its launchers wait for those installs and unmounts
                "mounts": [
                    {
                        "name": m.name,
                        "device": m.device,
                        "fstype": m.fstype,
                        "path": m.path,
                        "options": list(m.options),
                        "credentials": m.credentials_file is not None,
                        "credentials_file": m.credentials_file or "",
                        # The line Salt's mount.mounted writes (its own test=True comment does not
                        # show it): `salt-call launchers.plan` does. Credentials are a file path.
                        "fstab": f"{m.device} {m.path} {m.fstype} {','.join(m.options)} 0 0",
                    }
                    for m in mounts(config, production)[0]
                ],
            }
        )
    fstypes = {m["fstype"] for production in data["productions"] for m in production["mounts"]}
    clients = {
        settings.mount_packages.get(kind)
        for kind, fstype in MOUNT_TYPES.items()
        if fstype in fstypes
    }
    data.update(
        usable=True,
        storage=bool(
            fstypes
        ),  # the machine mounts production storage: the client packages come first
        mount_clients=dict.fromkeys(
            sorted(clients - {None, ""})
        ),  # {package: None}: the repository's version
        released=released,
        keep=keep,
        released_by_gone=[r for r in released if r["production"] not in keep],
        productions_dir=str(settings.productions),
        studio_launch=bool(keep or manifest),  # a machine that never had a production gets none
        command=str(settings.command),
        fstab=settings.fstab,
        mount_now=settings.phase != "bake",  # an image bake writes fstab and the mount point only
    )
    return data
