"""License clients of the DCCs, from `workstation:licenses`: validation, what each client needs, reachability.

Plain data in, plain data out, plus the few system calls the `licenses` execution
module wraps: atomic file writes with owner and mode set before the first byte,
TCP probes of the license servers, and Autodesk's licensing helper run by argv.

Secrets (a node-locked license's `content`, an Autodesk `product_key`) are never
put into an Issue message, a return value or a log line: validation says what is
wrong with them without quoting them, and the states get the pillar path of a
secret instead of its value.
"""

from __future__ import annotations

import difflib
import grp
import json
import os
import pwd
import re
import shlex
import socket
import stat
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from xml.sax.saxutils import escape

from salt_workstation import pillar, safefs, units
from salt_workstation.errors import WorkstationError
from salt_workstation.pillar import Issue, path_of

SECTION = "licenses"
TYPES = ("rlm", "flexlm", "sidefx", "autodesk", "chaos", "nodelocked")
TYPE_KEYS = {
    "rlm": ("type", "isv", "servers"),
    "flexlm": ("type", "vendor", "servers"),
    "sidefx": ("type", "servers"),
    "autodesk": ("type", "product_key", "product_version", "servers", "server_type", "config_file", "eula_locale"),
    "chaos": ("type", "servers"),
    "nodelocked": ("type", "path", "content", "mode", "owner", "group", "variable"),
}
ALL_KEYS = tuple(sorted({key for keys in TYPE_KEYS.values() for key in keys}))
# Values that never leave the pillar: the states read them by pillar path, at the moment of use.
SECRET_KEYS = ("content", "product_key")

# The machine layout this feature writes to: `workstation:os:licenses` (set it through
# `workstation:lookup:os:licenses`). `root` prefixes every path written, for tests and
# for image builds that mount the target root elsewhere; the files' contents keep the
# unprefixed paths, which are what the running machine sees.
DEFAULT_PARAMETERS = {
    "root": "/",
    "profile_file": "/etc/profile.d/workstation-licenses.sh",
    "environment_file": "/etc/environment.d/90-workstation-licenses.conf",
    # The license preference file (`serverhost=` line, the format `hserver -S` writes to
    # ~/.sesi_licenses.pref) of the machine-wide hserver; SESI_LMHOST covers every other hserver.
    "sidefx_file": "/usr/lib/sesi/hserver/.sesi_licenses.pref",
    "chaos_dir": "/etc/chaos",  # holds vrlclient.xml; VRAY_AUTH_CLIENT_FILE_PATH names it
    "autodesk_helper": "/opt/Autodesk/AdskLicensing/Current/helper/AdskLicensingInstHelper",
    "autodesk_timeout": 120,
}
_PATH_PARAMETERS = ("root", "profile_file", "environment_file", "sidefx_file", "chaos_dir", "autodesk_helper")

DEFAULT_PORTS = {"sidefx": 1715, "autodesk": 27000}
SERVER_SYNTAX = {
    "rlm": "port@host, e.g. 4101@rlm1",
    "flexlm": "port@host, e.g. 27000@lic1",
    "chaos": "port@host, e.g. 30304@vrlserver",
    "sidefx": "host or host:port, e.g. sesi1 or sesi1:1715",
    "autodesk": "host or port@host, e.g. lic1 or 27000@lic1",
}
AUTODESK_SERVER_TYPES = {"SINGLE": 1, "REDUNDANT": 2, "DISTRIBUTED": 3}
AUTODESK_NETWORK = ("NETWORK", 1, "1")  # `AdskLicensingInstHelper list` reports the method as a number
CHAOS_MAX_SERVERS = 3  # vrlclient.xml has Host, Host1 and Host2
NODELOCKED_MODES = (0o600, 0o640)

STATUSES = ("ok", "refused", "timeout", "unresolved", "unreachable", "invalid")

_HOST = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]+$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Paths end up unquoted in environment.d files: keep them to characters that need no quoting.
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._+/-]*$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_ACCOUNT = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_PRODUCT_KEY = re.compile(r"^[0-9A-Z]{5}$")
_PRODUCT_VERSION = re.compile(r"^\d{4}\.\d+\.\d+\.[A-Z]$")
_LOCALE = re.compile(r"^[A-Z]{2}$")

MANAGED_HEADER = "Managed by salt-workstation from the workstation:licenses pillar; local edits are overwritten."


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Server:
    """One license server as the pillar names it, and where a TCP probe goes."""

    text: str
    host: str
    port: int


def _port(text: str) -> int | None:
    if not re.fullmatch(r"[0-9]{1,5}", text):
        return None
    port = int(text)
    return port if 1 <= port <= 65535 else None


def parse_server(kind: str, value) -> tuple[Server | None, str | None]:
    """(Server, None) for a well-formed entry of `servers` of this type, else (None, what is wrong)."""
    syntax = SERVER_SYNTAX[kind]
    if not isinstance(value, str) or not value:
        return None, f"must be a server as {syntax}, got {value!r}"
    if kind == "sidefx":
        host, _, port_text = value.partition(":")
        port_text = port_text if ":" in value else str(DEFAULT_PORTS[kind])
    elif "@" in value:
        port_text, _, host = value.partition("@")
    elif kind == "autodesk":
        host, port_text = value, str(DEFAULT_PORTS[kind])
    else:
        return None, f"'{value}' is not port@host; write the port too ({syntax})"
    port = _port(port_text)
    if port is None:
        return None, f"port '{port_text}' in '{value}' is not a port number from 1 to 65535 ({syntax})"
    if not _HOST.match(host):
        return None, f"host '{host}' in '{value}' is not a valid host name or IPv4 address ({syntax})"
    return Server(value, host, port), None


def _server_items(kind, servers):
    """(path suffix, text) for each server, flattening flexlm's redundant triads."""
    for index, item in enumerate(servers):
        if kind == "flexlm" and isinstance(item, list):
            for member, text in enumerate(item):
                yield f"{index}:{member}", text
        else:
            yield str(index), item


def servers_of(name, entry) -> list[tuple[str, Server | None, str | None]]:
    """(pillar path, Server or None, problem) for every server an entry names."""
    kind = entry.get("type")
    servers = entry.get("servers")
    if kind not in SERVER_SYNTAX or not isinstance(servers, list):
        return []
    found = []
    for suffix, text in _server_items(kind, servers):
        server, problem = parse_server(kind, text)
        found.append((path_of(SECTION, name, "servers", suffix), server, problem))
    return found


# --------------------------------------------------------------------------- validation


def parameters(config) -> dict:
    """DEFAULT_PARAMETERS with `workstation:os:licenses` over them."""
    os_params = (config.get("os") or {}) if isinstance(config, dict) else {}
    overrides = os_params.get(SECTION) if isinstance(os_params, dict) else None
    merged = dict(DEFAULT_PARAMETERS)
    if isinstance(overrides, dict):
        merged.update(overrides)
    return merged


def check_parameters(config) -> list[Issue]:
    """`workstation:os:licenses`: absolute paths and a positive helper timeout."""
    os_params = config.get("os") if isinstance(config.get("os"), dict) else {}
    overrides = os_params.get(SECTION, {})
    where = "workstation:os:licenses (set it through workstation:lookup:os:licenses)"
    if not isinstance(overrides, dict):
        return [Issue(path_of("os", SECTION), f"must be a mapping of {', '.join(DEFAULT_PARAMETERS)}; see {where}")]
    issues = []
    for key, value in overrides.items():
        path = path_of("os", SECTION, key)
        if key not in DEFAULT_PARAMETERS:
            issues.append(Issue(path, f"unknown key{pillar.did_you_mean(key, list(DEFAULT_PARAMETERS))}"))
        elif key in _PATH_PARAMETERS and not (isinstance(value, str) and _SAFE_PATH.match(value)):
            issues.append(Issue(path, f"must be an absolute path of letters, digits and . _ + - /, got {value!r}"))
        elif key == "autodesk_timeout" and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            issues.append(Issue(path, f"must be a positive number of seconds, got {value!r}"))
    return issues


def file_mode(value) -> int | None:
    """A node-locked file's mode, 0600 or 0640; YAML reads an unquoted 0640 as the number 416."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str) and re.fullmatch(r"0?[0-7]{3}", value):
        mode = int(value, 8)
    else:
        return None
    return mode if mode in NODELOCKED_MODES else None


def _check_servers(name, entry, path) -> list[Issue]:
    kind = entry["type"]
    servers = entry.get("servers")
    if kind == "nodelocked":
        return []
    if not isinstance(servers, list) or not servers:
        return [Issue(f"{path}:servers", f"is required: a list of servers as {SERVER_SYNTAX[kind]}")]
    issues = []
    if kind == "flexlm":
        for index, item in enumerate(servers):
            if isinstance(item, list) and len(item) != 3:
                issues.append(Issue(f"{path}:servers:{index}",
                                    f"a redundant triad lists exactly 3 servers as port@host, got {len(item)}"))
    if kind == "chaos" and len(servers) > CHAOS_MAX_SERVERS:
        issues.append(Issue(f"{path}:servers", f"vrlclient.xml holds at most {CHAOS_MAX_SERVERS} servers, got {len(servers)}"))
    if kind == "autodesk":
        server_type = entry.get("server_type", "SINGLE")
        wanted = {"SINGLE": (1, 1), "REDUNDANT": (3, 3), "DISTRIBUTED": (2, 99)}.get(server_type)
        if wanted and not wanted[0] <= len(servers) <= wanted[1]:
            count = "exactly 1" if server_type == "SINGLE" else "exactly 3" if server_type == "REDUNDANT" else "2 or more"
            issues.append(Issue(f"{path}:servers", f"server_type {server_type} takes {count} servers, got {len(servers)}"))
    for server_path, _server, problem in servers_of(name, entry):
        if problem:
            issues.append(Issue(server_path, problem))
    return issues


def _check_autodesk(entry, path, public) -> list[Issue]:
    issues = []
    if not public:
        issues += check_product_key(entry.get("product_key"), f"{path}:product_key")
    version = entry.get("product_version")
    if not isinstance(version, str) or not _PRODUCT_VERSION.match(version):
        issues.append(Issue(f"{path}:product_version",
                            f"must be the product version as the helper spells it, e.g. \"2025.0.0.F\" (quoted), got {version!r}"))
    server_type = entry.get("server_type", "SINGLE")
    if server_type not in AUTODESK_SERVER_TYPES:
        issues.append(Issue(f"{path}:server_type", f"must be one of {', '.join(AUTODESK_SERVER_TYPES)}, got {server_type!r}"))
    config_file = entry.get("config_file")
    if config_file is not None and not (isinstance(config_file, str) and config_file.startswith("/")):
        issues.append(Issue(f"{path}:config_file", f"must be the absolute path of the product's .pit file, got {config_file!r}"))
    locale = entry.get("eula_locale", "US")
    if not isinstance(locale, str) or not _LOCALE.match(locale):
        issues.append(Issue(f"{path}:eula_locale", f"must be a two-letter upper-case locale such as US, got {locale!r}"))
    return issues


def check_product_key(value, path) -> list[Issue]:
    """An Autodesk product key, judged without ever quoting it."""
    if not isinstance(value, str) or not _PRODUCT_KEY.match(value):
        return [Issue(path, "is required: the product's 5-character key of digits and upper-case letters "
                            "(e.g. 657Q1 for Maya 2025); the value is never shown")]
    return []


def check_content(value, path) -> list[Issue]:
    """A node-locked license's content, judged without ever quoting it."""
    if not isinstance(value, str) or not value.strip():
        return [Issue(path, "is required: the license file's text (use a YAML block `content: |`); the value is never shown")]
    return []


def _check_nodelocked(entry, path, public) -> list[Issue]:
    issues = []
    target = entry.get("path")
    if not isinstance(target, str) or not _SAFE_PATH.match(target) or os.path.normpath(target) != target:
        issues.append(Issue(f"{path}:path", "must be the license file's absolute path (letters, digits and "
                                            ". _ + - / only, no '..', '.' or '//'), e.g. /opt/studio/licenses/katana.lic; "
                                            f"got {target!r}"))
    else:
        problem = pillar.name_issue(os.path.basename(target), f"{path}:path", "license file names", _FILE_NAME,
                                    "letters, digits and . _ + -")
        issues += [problem] if problem else []
    if not public:
        issues += check_content(entry.get("content"), f"{path}:content")
    if file_mode(entry.get("mode", "0600")) is None:
        issues.append(Issue(f"{path}:mode", f"must be \"0600\" or \"0640\" (quoted), got {entry.get('mode')!r}"))
    for key in ("owner", "group"):
        value = entry.get(key, "root")
        if not isinstance(value, str) or not _ACCOUNT.match(value):
            issues.append(Issue(f"{path}:{key}", f"must be a {'user' if key == 'owner' else 'group'} name, got {value!r}"))
    variable = entry.get("variable")
    if variable is not None and not (isinstance(variable, str) and ENV_NAME.match(variable)):
        issues.append(Issue(f"{path}:variable", f"must be an environment variable name such as foundry_LICENSE, got {variable!r}"))
    return issues


def check_entry(name, entry, public=False) -> list[Issue]:
    """One `workstation:licenses:<name>`. `public` checks an entry whose secrets were taken out."""
    issues: list[Issue] = []
    shape = f"a type ({', '.join(TYPES)}) and its settings"
    for checked_name, checked, path in pillar.named_entries({name: entry}, SECTION, shape, ALL_KEYS, issues):
        issues += _check_typed_entry(checked_name, checked, path, public)
    return issues


def _check_typed_entry(name, entry, path, public) -> list[Issue]:
    kind = entry.get("type")
    if kind is None:
        return [Issue(f"{path}:type", f"is required: one of {', '.join(TYPES)}")]
    if kind not in TYPES:
        close = difflib.get_close_matches(str(kind), TYPES, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return [Issue(f"{path}:type", f"unknown type '{kind}'; use one of {', '.join(TYPES)}{hint}")]
    issues = [Issue(f"{path}:{key}", f"does not apply to type '{kind}'; remove it")
              for key in entry if key in ALL_KEYS and key not in TYPE_KEYS[kind]]
    if kind == "rlm" and "isv" in entry and not (isinstance(entry["isv"], str) and _IDENTIFIER.match(entry["isv"])):
        issues.append(Issue(f"{path}:isv", f"must be the ISV name as RLM spells it (foundry, redshift, ...), got {entry['isv']!r}"))
    if kind == "flexlm" and "vendor" in entry and not (isinstance(entry["vendor"], str) and _IDENTIFIER.match(entry["vendor"])):
        issues.append(Issue(f"{path}:vendor", f"must be the FlexLM vendor daemon name (ADSKFLEX, ...), got {entry['vendor']!r}"))
    if kind == "autodesk":
        issues += _check_autodesk(entry, path, public)
    if kind == "nodelocked":
        issues += _check_nodelocked(entry, path, public)
    return issues + _check_servers(name, entry, path)


def variables_of(entry, params) -> dict[str, str]:
    """The environment variables one valid entry sets, the way its client reads them on Linux."""
    kind = entry["type"]
    if kind == "rlm":
        # RLM reads <isv>_LICENSE, or RLM_LICENSE for any ISV; a list is joined with ':' on Unix.
        variable = f"{entry['isv']}_LICENSE" if entry.get("isv") else "RLM_LICENSE"
        return {variable: ":".join(entry["servers"])}
    if kind == "flexlm":
        # A redundant triad is one comma-joined item; independent servers are joined with ':'.
        vendor = str(entry.get("vendor", "ADSKFLEX")).upper()
        items = [",".join(item) if isinstance(item, list) else item for item in entry["servers"]]
        return {f"{vendor}_LICENSE_FILE": ":".join(items)}
    if kind == "sidefx":
        return {"SESI_LMHOST": sidefx_server_list(entry)}
    if kind == "chaos":
        return {"VRAY_AUTH_CLIENT_FILE_PATH": params["chaos_dir"]}
    if kind == "nodelocked" and entry.get("variable"):
        return {entry["variable"]: entry["path"]}
    return {}


def _check_section(section, params, public) -> tuple[list[Issue], dict[str, str]]:
    """Every issue of the section, and the variables of its valid entries, checking that no two clash."""
    if not isinstance(section, dict):
        return [Issue(path_of(SECTION), "must map license names to {type: ..., servers: [...]} (see docs/licenses.md)")], {}
    issues: list[Issue] = []
    variables: dict[str, str] = {}
    set_by: dict[str, str] = {}
    singletons: dict[str, str] = {}
    files: dict[str, str] = {}
    for name in sorted(section, key=str):
        entry = section[name]
        entry_issues = check_entry(name, entry, public)
        issues += entry_issues
        if entry_issues:
            continue
        path = path_of(SECTION, name)
        kind = entry["type"]
        if kind in ("sidefx", "chaos"):
            if kind in singletons:
                what = "hserver server list" if kind == "sidefx" else "vrlclient.xml"
                issues.append(Issue(path, f"a second {kind} entry; {path_of(SECTION, singletons[kind])} already "
                                          f"writes the machine's one {what}: merge them"))
                continue
            singletons[kind] = name
        if kind == "nodelocked":
            if entry["path"] in files:
                issues.append(Issue(f"{path}:path", f"{entry['path']} is already written by {path_of(SECTION, files[entry['path']])}"))
                continue
            files[entry["path"]] = name
        for variable, value in variables_of(entry, params).items():
            if variable in set_by:
                issues.append(Issue(path, f"sets {variable}, which {path_of(SECTION, set_by[variable])} sets too; "
                                          "one entry per variable (list every server in that one)"))
                continue
            set_by[variable] = name
            variables[variable] = value
    return issues, dict(sorted(variables.items()))


def _check_catalog_references(config, names) -> list[Issue]:
    """Catalog versions' `licenses: [...]`, and the licenses the productions' app versions need."""
    issues = []
    catalog = config.get("catalog")
    for app, entry in (catalog.items() if isinstance(catalog, dict) else ()):
        versions = entry.get("versions") if isinstance(entry, dict) else None
        for version, spec in (versions.items() if isinstance(versions, dict) else ()):
            if isinstance(spec, dict) and "licenses" in spec:
                needed = spec["licenses"]
                if not isinstance(needed, list) or not all(isinstance(item, str) for item in needed):
                    issues.append(Issue(path_of("catalog", app, "versions", version, "licenses"),
                                        f"must list license names from workstation:licenses, e.g. [foundry], got {needed!r}"))
    for wanted in pillar.wanted_versions(config):
        needed = wanted.spec.get("licenses") if isinstance(wanted.spec, dict) else None
        for license_name in needed if isinstance(needed, list) else ():
            if isinstance(license_name, str) and license_name not in names:
                for used_by in wanted.used_by:
                    issues.append(Issue(used_by, (
                        f"{wanted.app} {wanted.version} needs license '{license_name}' "
                        f"({path_of('catalog', wanted.app, 'versions', wanted.version, 'licenses')}), which "
                        f"workstation:licenses does not define; add {path_of(SECTION, license_name)} or drop it there")))
    return issues


def check(config) -> list[Issue]:
    """Every problem in `workstation:licenses`, `workstation:os:licenses` and the catalog's `licenses` lists."""
    section = config.get(SECTION, {})
    issues = check_parameters(config)
    section_issues, _ = _check_section(section, parameters(config), public=False)
    names = set(section) if isinstance(section, dict) else set()
    return issues + section_issues + _check_catalog_references(config, names)


# --------------------------------------------------------------------------- what the clients read


def public_entry(entry):
    """An entry without its secrets: what states and formula data may carry."""
    if not isinstance(entry, dict):
        return entry
    return {key: value for key, value in entry.items() if key not in SECRET_KEYS}


def environment(section, params, public=True) -> tuple[dict[str, str], list[Issue]]:
    """The variables of the valid entries (sorted), and the section's issues."""
    issues, variables = _check_section(section if section is not None else {}, params, public)
    if not (isinstance(params.get("chaos_dir"), str) and _SAFE_PATH.match(params["chaos_dir"])):
        issues.append(Issue(path_of("os", SECTION, "chaos_dir"), f"must be an absolute path, got {params.get('chaos_dir')!r}"))
    return variables, issues


def render_environment(variables: dict, style: str) -> str:
    """A profile.d script (`profile`) or a systemd environment.d file (`environment.d`)."""
    lines = [f"# {MANAGED_HEADER}"]
    if style == "profile":
        lines += [f"export {name}={shlex.quote(value)}" for name, value in sorted(variables.items())]
    elif style == "environment.d":
        # Values are validated to need no quoting: environment.d expands $ and honours quotes.
        lines += [f"{name}={value}" for name, value in sorted(variables.items())]
    else:
        raise WorkstationError(f"unknown environment file style '{style}'; use profile or environment.d")
    return "\n".join(lines) + "\n"


_ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def parse_environment(text: str) -> dict[str, str]:
    """The variables of a file render_environment wrote (either style)."""
    found = {}
    for line in text.splitlines():
        match = _ASSIGNMENT.match(line.strip())
        if match:
            value = match.group(2)
            try:
                parts = shlex.split(value)
                value = parts[0] if len(parts) == 1 else value
            except ValueError:
                pass
            found[match.group(1)] = value
    return found


def sidefx_server_list(entry) -> str:
    """hserver's server chain: servers joined with ';', tried in order."""
    return ";".join(entry["servers"])


def render_sidefx(entry) -> str:
    """The license preference file hserver reads: one `serverhost=` line."""
    return f"serverhost={sidefx_server_list(entry)}\n"


def render_vrlclient(entry) -> str:
    """V-Ray's vrlclient.xml: up to three license servers (Host/Port, Host1/Port1, Host2/Port2)."""
    servers = [parse_server("chaos", text)[0] for text in entry["servers"]]
    lines = [f"<!-- {MANAGED_HEADER} -->", "<VRLClient>", "  <LicServer>"]
    for index in range(CHAOS_MAX_SERVERS):
        suffix = str(index) if index else ""
        server = servers[index] if index < len(servers) else None
        lines.append(f"    <Host{suffix}>{escape(server.host) if server else ''}</Host{suffix}>")
        lines.append(f"    <Port{suffix}>{server.port if server else 30304}</Port{suffix}>")
    lines += ["    <User></User>", "    <Pass></Pass>", "  </LicServer>", "</VRLClient>"]
    return "\n".join(lines) + "\n"


def rooted(params, path) -> str | None:
    """Where `path` of the running machine lies under `root` (the path itself when root is /);
    None when either is not a valid absolute path (check_parameters says which)."""
    root = params.get("root", "/")
    if not all(isinstance(value, str) and _SAFE_PATH.match(value) and ".." not in value.split("/")
               for value in (root, path)):
        return None
    return os.path.normpath(os.path.join(root, path.lstrip("/")))


# --------------------------------------------------------------------------- files


def account_ids(owner: str, group: str) -> tuple[int, int]:
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise WorkstationError(f"user '{owner}' does not exist on this machine; create it or pick another owner") from None
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise WorkstationError(f"group '{group}' does not exist on this machine; create it or pick another group") from None
    return uid, gid


def file_differences(path: str, data: bytes, mode: int, uid: int, gid: int) -> list[str] | None:
    """None when there is no file at `path`; else what differs: content, mode, owner (empty when none)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return ["type"]  # a link or something else: replaced by a plain file, never followed
    differences = []
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(descriptor, "rb") as handle:
        if handle.read() != data:
            differences.append("content")
    if stat.S_IMODE(info.st_mode) != mode:
        differences.append("mode")
    if (info.st_uid, info.st_gid) != (uid, gid):
        differences.append("owner")
    return differences


def ensure_file(path: str, data: bytes, mode: int, owner: str, group: str, test: bool) -> dict:
    """Make `path` hold `data` with this mode and owner. The changes never include the content."""
    uid, gid = account_ids(owner, group)
    differences = file_differences(path, data, mode, uid, gid)
    if differences == []:
        return {}
    changes = {"path": path, "mode": f"{mode:04o}", "owner": owner, "group": group}
    if differences is None:
        changes["created"] = True
    else:
        changes["updated"] = differences
    if not test:
        safefs.write_file(path, data, mode, uid, gid)
    return changes


def _read_own_file(path: str) -> str | None:
    """The text of a file this feature writes; None when absent, '' for a link or other non-file there
    (it is replaced, never read through)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(info.st_mode):
        raise WorkstationError(f"{path} is a folder; remove it so the file can be written")
    if not stat.S_ISREG(info.st_mode):
        return ""
    data = safefs.read_file(path)
    return None if data is None else data.decode("utf-8", errors="replace")


def ensure_environment_file(path: str, variables: dict, style: str, test: bool) -> dict:
    """The environment file with exactly these variables; removed when there are none."""
    old_text = _read_own_file(path)
    old = parse_environment(old_text) if old_text is not None else {}
    changed = {name: {"old": old.get(name), "new": variables.get(name)}
               for name in sorted(set(old) | set(variables)) if old.get(name) != variables.get(name)}
    if not variables:
        if old_text is None:
            return {}
        if not test:
            safefs.remove_file(path)
        return {"path": path, "removed": True, "variables": changed}
    text = render_environment(variables, style)
    changes = ensure_file(path, text.encode(), 0o644, "root", "root", test)
    if changes:
        changes["variables"] = changed
    return changes


# --------------------------------------------------------------------------- Autodesk licensing helper


def autodesk_registration(listing: str, product_key: str, product_version: str, servers: list, server_type: str) -> str:
    """From `AdskLicensingInstHelper list` output: registered (as wanted), different (another method or
    servers), or absent (the product is not registered at all)."""
    try:
        products = json.loads(listing)
    except ValueError:
        raise WorkstationError("could not read the output of `AdskLicensingInstHelper list` (not JSON)") from None
    for product in products if isinstance(products, list) else []:
        if not isinstance(product, dict):
            continue
        keys = {product.get("sel_prod_key"), product.get("def_prod_key")}
        versions = {product.get("sel_prod_ver"), product.get("def_prod_ver")}
        if product_key not in keys or product_version not in versions:
            continue
        listed = [server for server in product.get("lic_servers") or [] if server]
        listed_type = product.get("lic_server_type")
        same_type = listed_type is None or listed_type in (
            server_type, AUTODESK_SERVER_TYPES[server_type], str(AUTODESK_SERVER_TYPES[server_type]))
        if product.get("lic_method") in AUTODESK_NETWORK and listed == list(servers) and same_type:
            return "registered"
        return "different"
    return "absent"


def autodesk_argv(helper, action, product_key, product_version, servers, server_type,
                  config_file=None, eula_locale="US") -> list[str]:
    """`register` (the product is not known to the licensing service) or `change` (it is, licensed otherwise)."""
    argv = [helper, action, "--prod_key", product_key, "--prod_ver", product_version]
    if action == "register":
        argv += ["--eula_locale", eula_locale]
        if config_file:
            argv += ["--config_file", config_file]
    return argv + ["--lic_method", "NETWORK", "--lic_server_type", server_type, "--lic_servers", ",".join(servers)]


def run_helper(argv: list[str], timeout: float, secrets=()) -> str:
    """Run the helper (argv, no shell) and return its output; errors carry the output with secrets blotted out."""
    def blot(text):
        for secret in secrets:
            text = text.replace(secret, "<secret>")
        return text.strip()

    what = blot(" ".join(argv[:2]))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              check=False)
    except FileNotFoundError:
        raise WorkstationError(f"the Autodesk licensing helper is not at {argv[0]}; install the product (its "
                               "installer brings the Autodesk Licensing Service) or set "
                               "workstation:lookup:os:licenses:autodesk_helper") from None
    except subprocess.TimeoutExpired:
        raise WorkstationError(f"`{what}` did not finish in {timeout} s") from None
    if done.returncode != 0:
        raise WorkstationError(f"`{what}` failed with exit code {done.returncode}: "
                               f"{blot(done.stderr or done.stdout)[-2000:] or 'no output'}")
    return done.stdout


# --------------------------------------------------------------------------- reachability


def probe(host: str, port: int, timeout: float) -> str:
    """ok, refused, timeout, unresolved or unreachable, for one TCP connection within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return "unresolved"
    first = None
    for family, kind, proto, _name, address in addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            return first or "timeout"
        with socket.socket(family, kind, proto) as connection:
            connection.settimeout(left)
            try:
                connection.connect(address)
                return "ok"
            except ConnectionRefusedError:
                status = "refused"
            except (socket.timeout, TimeoutError):
                status = "timeout"
            except OSError:
                status = "unreachable"  # no route, network down
        first = first or status
    return first or "unresolved"


def probe_all(targets: list[tuple[str, Server | None]], timeout: float) -> list[str]:
    """The status of each (text, Server) target, probed in parallel; None servers are `invalid`."""
    statuses = ["invalid" if server is None else None for _text, server in targets]
    pending = [(index, server) for index, (_text, server) in enumerate(targets) if server is not None]
    if not pending:
        return statuses
    executor = ThreadPoolExecutor(max_workers=min(16, len(pending)), thread_name_prefix="license-probe")
    futures = {executor.submit(probe, server.host, server.port, timeout): index for index, server in pending}
    done, _late = wait(futures, timeout=timeout + 2)  # name resolution cannot be interrupted: give it a grace
    executor.shutdown(wait=False, cancel_futures=True)
    for future, index in futures.items():
        statuses[index] = future.result() if future in done else "timeout"
    return statuses


def reachability(section, timeout: float) -> dict:
    """Per license, per server: ok, refused, timeout, unresolved, unreachable, or invalid (malformed in pillar)."""
    targets = []
    for name in sorted(section, key=str) if isinstance(section, dict) else ():
        entry = section[name]
        if isinstance(entry, dict):
            for _path, server, _problem in servers_of(name, entry):
                text = server.text if server else None
                targets.append((name, text, server))
        elif entry is not None:
            targets.append((name, None, None))
    statuses = probe_all([(text, server) for _name, text, server in targets], timeout)
    servers: dict = {}
    for (name, text, _server), status in zip(targets, statuses):
        servers.setdefault(str(name), {})[text if text is not None else "(malformed)"] = status
    return {"ok": all(status == "ok" for status in statuses), "timeout": timeout, "servers": servers}


# --------------------------------------------------------------------------- formula data


def formula_data(config) -> dict:
    """The states `workstation.licenses` renders. Secrets stay out: states get their pillar paths.

    Two environment files (login shells and systemd user sessions) from the whole section,
    then one `licenses.configured` state per entry. A path that cannot be computed (a bad
    `workstation:os:licenses`) is given as the pillar path to fix, and the state fails on it.
    """
    params = parameters(config)
    section = config.get(SECTION, {})
    public = {name: public_entry(entry) for name, entry in section.items()} if isinstance(section, dict) else section

    def target(key, path):
        return rooted(params, path) or path_of("os", SECTION, key)

    states = [
        units.state(f"workstation-licenses-environment-{style_id}", "licenses.environment_file",
                    name=target(key, params.get(key)), style=style, licenses=public, chaos_dir=params.get("chaos_dir"))
        for style_id, key, style in (("profile", "profile_file", "profile"),
                                     ("session", "environment_file", "environment.d"))
    ]
    needed_by = _states_needing(config)
    for name in sorted(section, key=str) if isinstance(section, dict) else ():
        entry = section[name]
        kind = entry.get("type") if isinstance(entry, dict) else None
        args = {"name": str(name), "entry": public[name]}
        if kind == "sidefx":
            args["path"] = target("sidefx_file", params.get("sidefx_file"))
        elif kind == "chaos":
            chaos_dir = params.get("chaos_dir")
            args["path"] = target("chaos_dir", f"{chaos_dir}/vrlclient.xml" if isinstance(chaos_dir, str) else None)
        elif kind == "nodelocked":
            args["path"] = rooted(params, entry.get("path")) or path_of(SECTION, name, "path")
            args["content_pillar"] = path_of(SECTION, name, "content")
        elif kind == "autodesk":
            args.update(product_key_pillar=path_of(SECTION, name, "product_key"),
                        helper=params.get("autodesk_helper"), helper_timeout=params.get("autodesk_timeout"),
                        phase=config.get("phase", "all"))
            if needed_by.get(name):
                # The helper comes with the product's installer: register after that install.
                args["require"] = [{"dcc": state_id} for state_id in needed_by[name]]
        states.append(units.state(f"workstation-license-{name}", "licenses.configured", **args))
    return {"states": states}


def _states_needing(config) -> dict[str, list[str]]:
    """License name -> the app install states whose catalog entry lists it."""
    needing: dict[str, list[str]] = {}
    for wanted in pillar.wanted_versions(config):
        needed = wanted.spec.get("licenses") if isinstance(wanted.spec, dict) else None
        for name in needed if isinstance(needed, list) else ():
            if isinstance(name, str):
                needing.setdefault(name, []).append(wanted.state_id)
    return needing
