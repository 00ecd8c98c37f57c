"""The pillar contract: defaults, validation with exact pillar paths, and resolved app specs.

Everything here is plain data in, plain data out, so the execution modules, the
states, the formula and the tests all share one reading of the pillar.
"""

from __future__ import annotations

import difflib
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from salt_workstation import paths
from salt_workstation.units import UNIT_NAME

ROOT = "workstation"
KINDS = ("archive", "installer", "packages")
HASH_ALGORITHMS = {"sha256": 64, "sha512": 128}
DEPOT_SCHEMES = ("salt://", "http://", "https://", "file://")
DEFAULT_INSTALLER_TIMEOUT = 3600

TOP_KEYS = (
    "install_root",
    "depot",
    "retain",
    "catalog",
    "productions",
    "repositories",
    "phase",
    "lookup",
    "os",
    "gpu",
    "licenses",
    "display",
    "limits",
    "verify",
    "install_workers",
)
PHASES = ("all", "bake", "boot")
MAX_INSTALL_WORKERS = 64
VERIFY_MODES = ("shallow", "deep")
# workstation:limits: what one install may take (sizes in bytes, times in seconds).
LIMIT_KEYS = ("max_unpacked_bytes", "max_expansion", "depot_idle_timeout", "depot_deadline")
REPOSITORY_KEYS = ("url", "dist", "components", "key", "fingerprint")

# Names become folder and file names: each is one safe path component (no '/', never '.' or '..').
NAME_MAX_LENGTH = 64
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_COMMAND = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

APP_KEYS = ("name", "versions")
# `licenses` names workstation:licenses entries an app needs (licenses.check validates them);
# `host` / `host_versions` make a catalog entry a plugin of a host app (launchers.check).
_COMMON_KEYS = ("kind", "launchers", "env", "licenses")
_PLUGIN_KEYS = ("host", "host_versions")
VERSION_KEYS = {
    "archive": ("source", "hash", "strip_components", "size", *_COMMON_KEYS, *_PLUGIN_KEYS),
    "installer": (
        "source",
        "hash",
        "strip_components",
        "size",
        "installer",
        *_COMMON_KEYS,
        *_PLUGIN_KEYS,
    ),
    "packages": ("packages", "services", *_COMMON_KEYS),
}
ALL_VERSION_KEYS = sorted({key for keys in VERSION_KEYS.values() for key in keys})
PRODUCTION_KEYS = ("apps", "env", "plugins", "mounts")


@dataclass(frozen=True)
class Issue:
    """One thing wrong with the pillar, at one pillar path."""

    path: str
    message: str
    app: str | None = None
    version: str | None = None

    def __str__(self):
        return f"{self.path}: {self.message}"

    def as_dict(self):
        return {"path": self.path, "message": self.message}


@dataclass(frozen=True)
class VersionSpec:
    """One catalog app version, validated and with its source resolved against the depot."""

    app: str
    version: str
    kind: str
    source: str | None = None
    hash: str | None = None
    strip_components: int = 0
    launchers: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    installer: dict | None = None
    packages: dict = field(default_factory=dict)
    services: tuple = ()
    size: int | None = None  # unpacked bytes, when the catalog declares them
    mirrors: tuple = ()  # further URLs of the same bytes, tried in order when `source` cannot be read

    @property
    def sources(self) -> tuple:
        """Every URL the source can be read from, in the order to try them."""
        return (self.source, *self.mirrors) if self.source else ()

    @property
    def hash_algorithm(self):
        return self.hash.split(":", 1)[0]

    @property
    def hash_hex(self):
        return self.hash.split(":", 1)[1]


def path_of(*parts) -> str:
    """A pillar path the way `pillar.get` spells it: workstation:catalog:blender."""
    return ":".join([ROOT, *(str(part) for part in parts)])


def install_failure(app, version, reason) -> str:
    """How a failed install reads everywhere (CLI, state comment, progress event): once, with its catalog path."""
    return f"{app} {version} was not installed (catalog entry: {path_of('catalog', app, 'versions', version)}): {reason}"


def did_you_mean(key, choices):
    close = difflib.get_close_matches(str(key), choices, n=1)
    return f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(choices)}"


def name_issue(
    name, path, what="names", pattern=_NAME, allowed="lower case letters, digits and . _ -"
):
    """The Issue for a pillar name that is not one safe path component, else None.

    Every pillar name that becomes part of a path goes through here once: app, version,
    production, launcher command, plugin, license, mount and desktop-entry names.
    """
    if not isinstance(name, str) or not pattern.match(name):
        return Issue(
            path,
            f"{what} are {allowed}, starting with a letter or digit "
            f"(they become folder and file names), got {name!r}",
        )
    if len(name) > NAME_MAX_LENGTH:
        return Issue(path, f"{what} are at most {NAME_MAX_LENGTH} characters, got {len(name)}")
    return None


def check_command(command, path) -> list[Issue]:
    """A launcher command: a file name in a bin folder, so never '.', '..' or anything with '/'."""
    issue = name_issue(command, path, "command names", _COMMAND, "letters, digits and . _ -")
    return [issue] if issue else []


def _reads_as(text, number: float) -> bool:
    """Whether YAML, given `text` unquoted, would have read the same number."""
    try:
        return float(str(text)) == number
    except ValueError:
        return False


def version_text(raw, path, known=()) -> tuple[str, list[Issue]]:
    """A version must be a YAML string; 2025.10 unquoted reads as the float 2025.1.

    `known` are the catalog's versions of the app: one that reads as the same number is most
    likely the one meant, and is named."""
    if isinstance(raw, str):
        issue = name_issue(raw, path, "versions", _VERSION, "letters, digits and . _ + -")
        if issue:
            return raw, [issue]
        return raw, []
    if isinstance(raw, float):
        meant = [str(version) for version in known if _reads_as(version, raw)]
        if meant:
            return str(raw), [
                Issue(
                    path,
                    f"version {raw!r} is a number, not text: YAML read it unquoted and already "
                    f"turned it into {raw!r}; quote it, e.g. "
                    + " or ".join(f'"{version}"' for version in meant)
                    + " (the catalog's version that reads as that number)",
                )
            ]
        # YAML has already dropped the trailing zeros: 2025.10 arrives as 2025.1, and so does
        # 2025.100. Name the value it became and the likely intended ones; only the TD knows which.
        return str(raw), [
            Issue(
                path,
                f"version {raw!r} is a number, not text: YAML read it unquoted and already turned "
                f"it into {raw!r}, dropping any trailing zeros (2025.10 becomes 2025.1); quote it "
                f'as the vendor writes it, e.g. "{raw!r}0" if you wrote {raw!r}0, or "{raw!r}"',
            )
        ]
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw), [
            Issue(path, f'version {raw} is a number, not text: quote it, e.g. "{raw}"')
        ]
    return str(raw), [Issue(path, f"version must be a quoted string, got {type(raw).__name__}")]


def check_settings(config) -> list[Issue]:
    """The machine-wide settings: install_root, depot, retain."""
    issues = []
    root = config.get("install_root")
    if not isinstance(root, str) or not root.startswith("/"):
        issues.append(
            Issue(
                path_of("install_root"),
                f"must be an absolute path such as /opt/studio, got {root!r}",
            )
        )
    elif paths.is_system_dir(root):
        issues.append(
            Issue(
                path_of("install_root"),
                f"{root} is a system folder; use a folder of its own such as /opt/studio",
            )
        )
    issues += check_depot(config.get("depot"))
    phase = config.get("phase", "all")
    if phase not in PHASES:
        issues.append(
            Issue(
                path_of("phase"),
                f"must be one of {', '.join(PHASES)} (bake: image build, boot: first start), got {phase!r}",
            )
        )
    retain = config.get("retain")
    if isinstance(retain, bool) or not isinstance(retain, int) or retain < 0:
        issues.append(
            Issue(
                path_of("retain"),
                f"must be a whole number of previous versions to keep (0 or more), got {retain!r}",
            )
        )
    verify = config.get("verify", "shallow")
    if verify not in VERIFY_MODES:
        issues.append(
            Issue(
                path_of("verify"),
                "must be shallow (manifest and launchers: converged runs stay cheap) "
                f"or deep (re-hash every installed file, repair what changed), got {verify!r}",
            )
        )
    workers = config.get("install_workers", "auto")
    if workers != "auto" and (
        isinstance(workers, bool)
        or not isinstance(workers, int)
        or not 1 <= workers <= MAX_INSTALL_WORKERS
    ):
        issues.append(
            Issue(
                path_of("install_workers"),
                f"must be auto or a whole number from 1 (one install at a time) to "
                f"{MAX_INSTALL_WORKERS}, got {workers!r}",
            )
        )
    return issues + check_limits(config.get("limits", {}))


def install_workers(config) -> int:
    """How many app versions one apply installs at once. `auto`: four per CPU, from 4 to 8.

    An install spends most of its time waiting on the depot (a WAN link or an object store
    limits each connection) and needs about a quarter of a core to inflate, hash and write at
    such rates: more connections than cores pay off, and past 8 the depot and the disk, not the
    workstation, set the pace.
    """
    workers = config.get("install_workers", "auto")
    if isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1:
        return min(workers, MAX_INSTALL_WORKERS)
    return max(4, min(8, 4 * (os.cpu_count() or 1)))


def depot_mirrors(depot) -> list:
    """The depot setting as the ordered list of mirrors to try (one depot is a list of one)."""
    return list(depot) if isinstance(depot, list) else [depot]


def check_depot(depot) -> list[Issue]:
    """`workstation:depot`: one base URL, or an ordered list of mirrors of the same files."""
    if isinstance(depot, list) and not depot:
        return [Issue(path_of("depot"), "lists no mirror; give one depot URL or a list of them")]
    issues = []
    for index, mirror in enumerate(depot_mirrors(depot)):
        if not isinstance(mirror, str) or not (
            mirror.startswith(DEPOT_SCHEMES) or mirror.startswith("/")
        ):
            where = path_of("depot", index) if isinstance(depot, list) else path_of("depot")
            issues.append(
                Issue(
                    where,
                    f"must be a salt://, http(s)://, file:// URL or an absolute path, got {mirror!r}",
                )
            )
    return issues


def check_limits(limits) -> list[Issue]:
    """`workstation:limits`: positive whole numbers (bytes, a ratio, seconds)."""
    if not isinstance(limits, dict):
        return [Issue(path_of("limits"), f"must map {', '.join(LIMIT_KEYS)} to numbers")]
    issues = []
    for key, value in limits.items():
        if key not in LIMIT_KEYS:
            issues.append(
                Issue(path_of("limits", key), f"unknown key{did_you_mean(key, list(LIMIT_KEYS))}")
            )
        elif isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            issues.append(
                Issue(path_of("limits", key), f"must be a positive whole number, got {value!r}")
            )
    return issues


def check_hash(value, path) -> list[Issue]:
    if not isinstance(value, str) or ":" not in value:
        return [
            Issue(
                path,
                "is required as '<algorithm>:<hex digest>', e.g. sha256:<64 hex>; nothing is installed without it",
            )
        ]
    algorithm, digest = value.split(":", 1)
    if algorithm not in HASH_ALGORITHMS:
        return [
            Issue(
                path,
                f"algorithm '{algorithm}' is not supported; use one of {', '.join(HASH_ALGORITHMS)}",
            )
        ]
    want = HASH_ALGORITHMS[algorithm]
    if len(digest) != want or not re.fullmatch(r"[0-9a-fA-F]+", digest):
        return [
            Issue(
                path,
                f"a {algorithm} digest is {want} hex characters, got {len(digest)}: '{digest}'",
            )
        ]
    return []


def _check_relative_path(value, path, what) -> list[Issue]:
    if not isinstance(value, str) or not value:
        return [Issue(path, f"{what} must be a path inside the version folder, got {value!r}")]
    pure = PurePosixPath(value)
    if pure.is_absolute() or ".." in pure.parts:
        return [
            Issue(path, f"{what} '{value}' must stay inside the version folder (relative, no '..')")
        ]
    return []


def check_version_spec(app, version, spec, path) -> list[Issue]:
    """One catalog entry `workstation:catalog:<app>:versions:<version>`."""

    def issue(where, message):
        return Issue(f"{path}:{where}" if where else path, message, app, version)

    if not isinstance(spec, dict):
        return [
            issue(None, f"must be a mapping with source, hash and kind, got {type(spec).__name__}")
        ]
    issues = []
    kind = spec.get("kind", "archive")
    if kind not in KINDS:
        issues.append(issue("kind", f"unknown kind '{kind}'; use one of {', '.join(KINDS)}"))
        allowed = ALL_VERSION_KEYS
    else:
        allowed = VERSION_KEYS[kind]
    for key in spec:
        if key not in allowed:
            if key in ALL_VERSION_KEYS:
                issues.append(issue(key, f"does not apply to kind '{kind}'; remove it"))
            else:
                issues.append(issue(key, f"unknown key{did_you_mean(key, list(allowed))}"))
    if kind in ("archive", "installer"):
        issues.extend(_check_sources(spec.get("source"), issue))
        for problem in check_hash(spec.get("hash"), f"{path}:hash"):
            issues.append(Issue(problem.path, problem.message, app, version))
        strip = spec.get("strip_components", 0)
        if isinstance(strip, bool) or not isinstance(strip, int) or strip < 0:
            issues.append(
                issue("strip_components", f"must be a whole number (0 or more), got {strip!r}")
            )
        size = spec.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
            issues.append(
                issue(
                    "size",
                    f"must be the unpacked size in bytes (a positive whole number), got {size!r}",
                )
            )
    if kind == "installer":
        issues.extend(_check_installer(spec.get("installer"), app, version, f"{path}:installer"))
    if kind == "packages":
        packages = spec.get("packages")
        if not isinstance(packages, dict) or not packages:
            issues.append(
                issue("packages", "is required: a mapping of OS package name to pinned version")
            )
        else:
            for name, pinned in packages.items():
                if not isinstance(pinned, str) or not pinned:
                    issues.append(
                        issue(
                            f"packages:{name}",
                            f"pin an exact version as a quoted string, got {pinned!r}",
                        )
                    )
        services = spec.get("services", [])
        if not isinstance(services, list) or not all(
            isinstance(u, str) and UNIT_NAME.match(u) for u in services
        ):
            issues.append(
                issue(
                    "services",
                    f"must list systemd unit names such as dcvserver.service, got {services!r}",
                )
            )
    launchers = spec.get("launchers", {})
    if not isinstance(launchers, dict):
        issues.append(
            issue("launchers", "must map a command name to a path inside the version folder")
        )
    else:
        for command, target in launchers.items():
            issues.extend(
                Issue(p.path, p.message, app, version)
                for p in check_command(command, f"{path}:launchers:{command}")
            )
            if kind != "packages":
                issues.extend(
                    Issue(p.path, p.message, app, version)
                    for p in _check_relative_path(target, f"{path}:launchers:{command}", "launcher")
                )
    env = spec.get("env", {})
    if not isinstance(env, dict):
        issues.append(issue("env", "must map variable names to text"))
    else:
        for name, value in env.items():
            if not isinstance(name, str) or not ENV_NAME.match(name):
                issues.append(issue(f"env:{name}", "is not a valid environment variable name"))
            if not isinstance(value, str):
                issues.append(issue(f"env:{name}", f"must be text; quote it, got {value!r}"))
    return issues


def _check_sources(source, issue) -> list[Issue]:
    """A catalog `source`: one path or URL, or an ordered list of them (mirrors of the same bytes)."""
    if isinstance(source, list) and not source:
        return [issue("source", "lists no source; give a path relative to the depot or a URL")]
    issues = []
    for index, entry in enumerate(source if isinstance(source, list) else [source]):
        where = f"source:{index}" if isinstance(source, list) else "source"
        if not isinstance(entry, str) or not entry:
            issues.append(
                issue(where, "is required: a path relative to the depot or an absolute URL")
            )
        elif "://" in entry and not entry.startswith(DEPOT_SCHEMES):
            issues.append(
                issue(
                    where,
                    f"unsupported URL scheme in '{entry}'; use salt://, http(s):// or file://",
                )
            )
        elif "://" not in entry and ".." in PurePosixPath(entry).parts:
            issues.append(issue(where, f"'{entry}' must not climb out of the depot with '..'"))
    return issues


def _check_installer(installer, app, version, path) -> list[Issue]:
    if not isinstance(installer, dict):
        return [
            Issue(
                path,
                "is required for kind installer: {command: [argv ...], timeout: seconds}",
                app,
                version,
            )
        ]
    issues = []
    command = installer.get("command")
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(arg, str) for arg in command)
    ):
        issues.append(
            Issue(
                f"{path}:command",
                "must be a list of arguments (no shell), e.g. [./install.sh, --prefix, '{dest}']",
                app,
                version,
            )
        )
    elif not any("{dest}" in arg for arg in command):
        issues.append(
            Issue(
                f"{path}:command",
                "must pass '{dest}' so the installer writes into the staging folder",
                app,
                version,
            )
        )
    timeout = installer.get("timeout", DEFAULT_INSTALLER_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
        issues.append(
            Issue(
                f"{path}:timeout",
                f"must be a positive number of seconds, got {timeout!r}",
                app,
                version,
            )
        )
    for key in installer:
        if key not in ("command", "timeout"):
            issues.append(
                Issue(
                    f"{path}:{key}",
                    f"unknown key{did_you_mean(key, ['command', 'timeout'])}",
                    app,
                    version,
                )
            )
    return issues


def named_entries(mapping, section, shape, keys, issues, scoped=False):
    """Yield (name, entry, path) for each well-formed `<section>:<name>` mapping; report the others.

    Names become folder and file names, so they are one safe path component.
    `scoped` ties the issues to the entry's name as an app (for per-app states).
    """
    for name, entry in mapping.items():
        path = path_of(section, name)
        app = str(name) if scoped else None
        problem = name_issue(name, path)
        if problem:
            issues.append(Issue(problem.path, problem.message, app))
            continue
        if not isinstance(entry, dict):
            issues.append(Issue(path, f"must be a mapping with {shape}", app))
            continue
        for key in entry:
            if key not in keys:
                issues.append(
                    Issue(f"{path}:{key}", f"unknown key{did_you_mean(key, list(keys))}", app)
                )
        yield name, entry, path


def check_catalog(catalog) -> list[Issue]:
    if not isinstance(catalog, dict):
        return [Issue(path_of("catalog"), "must map app names to {name, versions}")]
    issues = []
    for app, entry, app_path in named_entries(
        catalog, "catalog", "'versions'", APP_KEYS, issues, scoped=True
    ):
        versions = entry.get("versions")
        if not isinstance(versions, dict) or not versions:
            issues.append(
                Issue(
                    f"{app_path}:versions",
                    "must map each version (quoted) to its source, hash and kind",
                    app,
                )
            )
            continue
        for raw_version, spec in versions.items():
            version_path = f"{app_path}:versions:{raw_version}"
            version, problems = version_text(raw_version, version_path)
            issues.extend(Issue(p.path, p.message, app, version) for p in problems)
            issues.extend(check_version_spec(app, version, spec, version_path))
    return issues


def catalog_entry(catalog, app, version):
    """The raw catalog spec for app/version, matching keys as text; None when absent."""
    versions = ((catalog or {}).get(app) or {}).get("versions") or {}
    if not isinstance(versions, dict):
        return None
    for raw, spec in versions.items():
        if str(raw) == version:
            return spec
    return None


def check_reference(catalog, production, app, raw_version) -> list[Issue]:
    """A production's `apps: {app: version}` entry must name a catalog version as text."""
    path = path_of("productions", production, "apps", app)
    entry = catalog.get(app) if isinstance(catalog, dict) else None
    versions = entry.get("versions") if isinstance(entry, dict) else None
    known = versions if isinstance(versions, dict) else ()
    version, issues = version_text(raw_version, path, known)
    issues = [Issue(p.path, p.message, app, version) for p in issues]
    if not isinstance(catalog, dict) or app not in catalog:
        known = ", ".join(sorted(map(str, catalog))) if isinstance(catalog, dict) else ""
        issues.append(
            Issue(
                path,
                f"app '{app}' is not in workstation:catalog; add it there or fix the name"
                + (f" (catalog has: {known})" if known else ""),
                app,
                version,
            )
        )
    elif catalog_entry(catalog, app, version) is None:
        versions = (catalog[app] or {}).get("versions") if isinstance(catalog[app], dict) else None
        known = ", ".join(sorted(map(str, versions))) if isinstance(versions, dict) else "none"
        issues.append(
            Issue(
                path,
                f"{app} {version} is not in workstation:catalog:{app}:versions (known: {known}); "
                "add it to the catalog or pick a listed version",
                app,
                version,
            )
        )
    return issues


def check_productions(config) -> list[Issue]:
    productions = config.get("productions")
    catalog = config.get("catalog")
    if not isinstance(productions, dict):
        return [
            Issue(path_of("productions"), "must map production names to {apps: {app: version}}")
        ]
    issues = []
    for production, entry, prod_path in named_entries(
        productions, "productions", "'apps'", PRODUCTION_KEYS, issues
    ):
        apps = entry.get("apps", {})
        if not isinstance(apps, dict):
            issues.append(Issue(f"{prod_path}:apps", "must map app names to quoted versions"))
            continue
        for app, raw_version in apps.items():
            issues.extend(check_reference(catalog, production, app, raw_version))
    return issues


def check_repositories(repositories) -> list[Issue]:
    """`workstation:repositories:<name>`: a signed package repository, its key pinned by fingerprint."""
    if not isinstance(repositories, dict):
        return [
            Issue(
                path_of("repositories"),
                "must map repository names to {url, dist, components, key, fingerprint}",
            )
        ]
    issues = []
    for _name, repo, repo_path in named_entries(
        repositories, "repositories", "url, key and fingerprint", REPOSITORY_KEYS, issues
    ):
        url = repo.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://", "file://")):
            issues.append(
                Issue(f"{repo_path}:url", f"must be an http(s):// or file:// URL, got {url!r}")
            )
        key = repo.get("key")
        if not isinstance(key, str) or "BEGIN PGP PUBLIC KEY BLOCK" not in key:
            issues.append(
                Issue(
                    f"{repo_path}:key",
                    "must be the repository's ASCII-armoured public key (-----BEGIN PGP PUBLIC KEY BLOCK-----)",
                )
            )
        fingerprint = "".join(str(repo.get("fingerprint") or "").split())
        if not re.fullmatch(r"[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64}", fingerprint):
            issues.append(
                Issue(
                    f"{repo_path}:fingerprint",
                    "must pin the key's full fingerprint (40 hex characters; gpg --show-keys prints it)",
                )
            )
        components = repo.get("components", ["main"])
        if not isinstance(components, list) or not all(
            isinstance(c, str) and c for c in components
        ):
            issues.append(
                Issue(
                    f"{repo_path}:components",
                    f"must be a list of component names, got {components!r}",
                )
            )
        if "dist" in repo and not (isinstance(repo["dist"], str) and repo["dist"]):
            issues.append(
                Issue(
                    f"{repo_path}:dist",
                    f"must be the suite name, e.g. bookworm, got {repo['dist']!r}",
                )
            )
    return issues


def check_core(config) -> list[Issue]:
    """The apps part of the contract: top-level keys, settings, repositories, catalog, productions.
    contract.validate adds each feature's part."""
    unknown = [key for key in config if key not in TOP_KEYS]
    issues = [
        Issue(path_of(key), f"unknown key{did_you_mean(key, list(TOP_KEYS))}") for key in unknown
    ]
    issues += check_settings(config)
    issues += check_repositories(config.get("repositories", {}))
    issues += check_catalog(config.get("catalog"))
    issues += check_productions(config)
    return issues


def resolve_source(source: str, depot: str) -> str:
    """An absolute URL for a catalog source: relative sources hang off the depot."""
    if "://" in source:
        return source
    if source.startswith("/"):
        return "file://" + urllib.parse.quote(source, safe="/+")
    if depot.startswith("salt://"):
        return (
            depot.rstrip("/") + "/" + source.lstrip("/")
        )  # the Salt fileserver takes paths as they are
    base = depot if "://" in depot else "file://" + urllib.parse.quote(depot, safe="/+")
    return base.rstrip("/") + "/" + urllib.parse.quote(source.lstrip("/"), safe="/+")


def resolve_sources(source, depot) -> list[str]:
    """Every URL a catalog source can be read from, in the order to try: each listed source in
    turn, and a relative one on each depot mirror in turn (an absolute URL once)."""
    urls: list[str] = []
    for entry in source if isinstance(source, list) else [source]:
        for mirror in depot_mirrors(depot):
            url = resolve_source(entry, mirror)
            if url not in urls:
                urls.append(url)
    return urls


def resolve_spec(app, version, spec, depot) -> VersionSpec:
    """A validated raw catalog entry as a VersionSpec (call check_version_spec first)."""
    kind = spec.get("kind", "archive")
    sources = resolve_sources(spec["source"], depot) if kind != "packages" else [None]
    installer = None
    if kind == "installer":
        installer = {
            "command": list(spec["installer"]["command"]),
            "timeout": spec["installer"].get("timeout", DEFAULT_INSTALLER_TIMEOUT),
        }
    return VersionSpec(
        app=app,
        version=version,
        kind=kind,
        source=sources[0],
        mirrors=tuple(sources[1:]),
        hash=spec["hash"].lower() if kind != "packages" else None,
        strip_components=spec.get("strip_components", 0),
        launchers=dict(spec.get("launchers") or {}),
        env=dict(spec.get("env") or {}),
        installer=installer,
        packages={name: str(pinned) for name, pinned in (spec.get("packages") or {}).items()},
        services=tuple(spec.get("services") or ()),
        size=spec.get("size"),
    )


@dataclass
class WantedVersion:
    """One app version some productions want: one `dcc.installed` state."""

    app: str
    version: str
    version_raw: object
    spec: dict | None
    used_by: list

    @property
    def state_id(self):
        return f"workstation-app-{self.app}-{self.version}"


def wanted_versions(config) -> list[WantedVersion]:
    """Every (app, version) the productions name, shared versions once, in a stable order."""
    wanted: dict[tuple[str, str], WantedVersion] = {}
    productions = config.get("productions")
    if not isinstance(productions, dict):
        return []
    for production in sorted(productions, key=str):
        entry = productions[production] if isinstance(productions[production], dict) else {}
        for section in (
            "apps",
            "plugins",
        ):  # plugins install like apps; the launchers wire them into their host
            listed = entry.get(section)
            if not isinstance(listed, dict):
                continue
            for app in sorted(listed, key=str):
                raw = listed[app]
                version = str(raw)
                key = (str(app), version)
                if key not in wanted:
                    spec = catalog_entry(config.get("catalog"), app, version)
                    wanted[key] = WantedVersion(str(app), version, raw, spec, [])
                wanted[key].used_by.append(path_of("productions", production, section, app))
    return sorted(wanted.values(), key=lambda w: (w.app, w.version))


def wanted_by_app(config) -> dict[str, list[str]]:
    """App name -> the versions the productions want, sorted."""
    grouped: dict[str, list[str]] = {}
    for wanted in wanted_versions(config):
        grouped.setdefault(wanted.app, []).append(wanted.version)
    return grouped
