"""The licenses part of the pillar contract: `workstation:licenses`, `workstation:os:licenses`, and the
catalog's `licenses: [...]` lists. Every Issue has its exact pillar path and says what to write instead.

Secrets (a node-locked license's `content`, an Autodesk `product_key`) are judged here but never
quoted: an Issue says what is wrong with one without showing it.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass

from salt_workstation import pillar, secrets
from salt_workstation.pillar import (
    ENV_NAME,
    Issue,
    did_you_mean,
    name_issue,
    named_entries,
    path_of,
)

SECTION = "licenses"
TYPES = ("rlm", "flexlm", "sidefx", "autodesk", "chaos", "nodelocked")
TYPE_KEYS = {
    "rlm": ("type", "isv", "servers"),
    "flexlm": ("type", "vendor", "servers"),
    "sidefx": ("type", "servers"),
    "autodesk": (
        "type",
        "product_key",
        "product_version",
        "servers",
        "server_type",
        "config_file",
        "eula_locale",
    ),
    "chaos": ("type", "servers"),
    "nodelocked": ("type", "path", "content", "mode", "owner", "group", "variable"),
}
ALL_KEYS = tuple(sorted({key for keys in TYPE_KEYS.values() for key in keys}))

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
# The folders of `workstation:os` (defaults.yaml) the environment files go into unless
# `workstation:os:licenses` names the file itself.
FOLDER_PARAMETERS = {"profile_file": "profile_dir", "environment_file": "environment_dir"}
PATH_PARAMETERS = (
    "root",
    "profile_file",
    "environment_file",
    "sidefx_file",
    "chaos_dir",
    "autodesk_helper",
)

DEFAULT_PORTS = {"sidefx": 1715, "autodesk": 27000}
SERVER_SYNTAX = {
    "rlm": "port@host, e.g. 4101@rlm1",
    "flexlm": "port@host, e.g. 27000@lic1",
    "chaos": "port@host, e.g. 30304@vrlserver",
    "sidefx": "host or host:port, e.g. sesi1 or sesi1:1715",
    "autodesk": "host or port@host, e.g. lic1 or 27000@lic1",
}
AUTODESK_SERVER_TYPES = {"SINGLE": 1, "REDUNDANT": 2, "DISTRIBUTED": 3}
CHAOS_MAX_SERVERS = 3  # vrlclient.xml has Host, Host1 and Host2
NODELOCKED_MODES = (0o600, 0o640)

_HOST = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]+$")
# Paths end up unquoted in environment.d files: keep them to characters that need no quoting.
SAFE_PATH = re.compile(r"^/[A-Za-z0-9._+/-]*$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_ACCOUNT = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_PRODUCT_KEY = re.compile(r"^[0-9A-Z]{5}$")
_PRODUCT_VERSION = re.compile(r"^\d{4}\.\d+\.\d+\.[A-Z]$")
_LOCALE = re.compile(r"^[A-Z]{2}$")


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Server:
    """One license server as the pillar names it, and where a TCP probe goes."""

    text: str
    host: str
    port: int


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
    port = int(port_text) if re.fullmatch(r"[0-9]{1,5}", port_text) else 0
    if not 1 <= port <= 65535:
        return (
            None,
            f"port '{port_text}' in '{value}' is not a port number from 1 to 65535 ({syntax})",
        )
    if not _HOST.match(host):
        return (
            None,
            f"host '{host}' in '{value}' is not a valid host name or IPv4 address ({syntax})",
        )
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
    return [
        (path_of(SECTION, name, "servers", suffix), *parse_server(kind, text))
        for suffix, text in _server_items(kind, servers)
    ]


# --------------------------------------------------------------------------- workstation:os:licenses


def parameters(config) -> dict:
    """DEFAULT_PARAMETERS, the environment files moved into `workstation:os:profile_dir` and
    `environment_dir` (the machine's folders, overridden through `workstation:lookup:os` like
    launchers' bin_dir and fstab), then `workstation:os:licenses` over them."""
    os_params = (config.get("os") or {}) if isinstance(config, dict) else {}
    os_params = os_params if isinstance(os_params, dict) else {}
    overrides = os_params.get(SECTION)
    merged = dict(DEFAULT_PARAMETERS)
    for key, folder_key in FOLDER_PARAMETERS.items():
        folder = os_params.get(folder_key)
        if isinstance(folder, str):
            merged[key] = f"{folder.rstrip('/')}/{os.path.basename(DEFAULT_PARAMETERS[key])}"
    if isinstance(overrides, dict):
        merged.update(overrides)
    return merged


def check_parameters(config) -> list[Issue]:
    """`workstation:os:licenses` and the environment files' folders in `workstation:os`: absolute
    paths and a positive helper timeout."""
    os_params = config.get("os") if isinstance(config.get("os"), dict) else {}
    overrides = os_params.get(SECTION, {})
    where = "workstation:os:licenses (set it through workstation:lookup:os:licenses)"
    issues = [
        Issue(
            path_of("os", folder_key),
            f"must be an absolute path of letters, digits and . _ + - / (set it through "
            f"workstation:lookup:os:{folder_key}), got {os_params[folder_key]!r}",
        )
        for folder_key in FOLDER_PARAMETERS.values()
        if folder_key in os_params and not safe_path(os_params[folder_key])
    ]
    if not isinstance(overrides, dict):
        return [
            *issues,
            Issue(
                path_of("os", SECTION),
                f"must be a mapping of {', '.join(DEFAULT_PARAMETERS)}; see {where}",
            ),
        ]
    for key, value in overrides.items():
        path = path_of("os", SECTION, key)
        if key not in DEFAULT_PARAMETERS:
            issues.append(Issue(path, f"unknown key{did_you_mean(key, list(DEFAULT_PARAMETERS))}"))
        elif key in PATH_PARAMETERS and not (isinstance(value, str) and SAFE_PATH.match(value)):
            issues.append(
                Issue(
                    path,
                    f"must be an absolute path of letters, digits and . _ + - /, got {value!r}",
                )
            )
        elif key == "autodesk_timeout" and not positive_number(value):
            issues.append(Issue(path, f"must be a positive number of seconds, got {value!r}"))
    return issues


def positive_number(value) -> bool:
    """A whole number of seconds above 0 (True is not a number here)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def safe_path(value) -> bool:
    """An absolute path of letters, digits and . _ + - /, without '..'."""
    return isinstance(value, str) and bool(SAFE_PATH.match(value)) and ".." not in value.split("/")


# --------------------------------------------------------------------------- one entry


def file_mode(value) -> int | None:
    """A node-locked file's mode, 0600 or 0640; YAML reads an unquoted 0640 as the number 416."""
    if isinstance(value, str) and re.fullmatch(r"0?[0-7]{3}", value):
        value = int(value, 8)
    return (
        value
        if isinstance(value, int) and not isinstance(value, bool) and value in NODELOCKED_MODES
        else None
    )


def _check_servers(name, entry, path) -> list[Issue]:
    kind = entry["type"]
    servers = entry.get("servers")
    if kind == "nodelocked":
        return []
    if not isinstance(servers, list) or not servers:
        return [
            Issue(f"{path}:servers", f"is required: a list of servers as {SERVER_SYNTAX[kind]}")
        ]
    issues = []
    if kind == "flexlm":
        for index, item in enumerate(servers):
            if isinstance(item, list) and len(item) != 3:
                issues.append(
                    Issue(
                        f"{path}:servers:{index}",
                        f"a redundant triad lists exactly 3 servers as port@host, got {len(item)}",
                    )
                )
    if kind == "chaos" and len(servers) > CHAOS_MAX_SERVERS:
        issues.append(
            Issue(
                f"{path}:servers",
                f"vrlclient.xml holds at most {CHAOS_MAX_SERVERS} servers, got {len(servers)}",
            )
        )
    if kind == "autodesk":
        server_type = entry.get("server_type", "SINGLE")
        wanted = {"SINGLE": (1, 1), "REDUNDANT": (3, 3), "DISTRIBUTED": (2, 99)}.get(server_type)
        if wanted and not wanted[0] <= len(servers) <= wanted[1]:
            count = (
                "exactly 1"
                if server_type == "SINGLE"
                else "exactly 3"
                if server_type == "REDUNDANT"
                else "2 or more"
            )
            issues.append(
                Issue(
                    f"{path}:servers",
                    f"server_type {server_type} takes {count} servers, got {len(servers)}",
                )
            )
    return issues + [
        Issue(server_path, problem)
        for server_path, _server, problem in servers_of(name, entry)
        if problem
    ]


def _check_autodesk(entry, path) -> list[Issue]:
    issues = check_product_key(entry.get("product_key"), f"{path}:product_key")
    version = entry.get("product_version")
    if not isinstance(version, str) or not _PRODUCT_VERSION.match(version):
        issues.append(
            Issue(
                f"{path}:product_version",
                f'must be the product version as the helper spells it, e.g. "2025.0.0.F" (quoted), got {version!r}',
            )
        )
    server_type = entry.get("server_type", "SINGLE")
    if server_type not in AUTODESK_SERVER_TYPES:
        issues.append(
            Issue(
                f"{path}:server_type",
                f"must be one of {', '.join(AUTODESK_SERVER_TYPES)}, got {server_type!r}",
            )
        )
    config_file = entry.get("config_file")
    if config_file is not None and not (
        isinstance(config_file, str) and config_file.startswith("/")
    ):
        issues.append(
            Issue(
                f"{path}:config_file",
                f"must be the absolute path of the product's .pit file, got {config_file!r}",
            )
        )
    locale = entry.get("eula_locale", "US")
    if not isinstance(locale, str) or not _LOCALE.match(locale):
        issues.append(
            Issue(
                f"{path}:eula_locale",
                f"must be a two-letter upper-case locale such as US, got {locale!r}",
            )
        )
    return issues


def check_product_key(value, path) -> list[Issue]:
    """An Autodesk product key, judged without ever quoting it; an sdb reference is judged by
    contract.validate, and its value where it is resolved."""
    if secrets.is_reference(value):
        return []
    if not isinstance(value, str) or not _PRODUCT_KEY.match(value):
        return [
            Issue(
                path,
                "is required: the product's 5-character key of digits and upper-case letters "
                "(e.g. 657Q1 for Maya 2025), or an sdb://<profile>/<key> reference to it; "
                "the value is never shown",
            )
        ]
    return []


def check_content(value, path) -> list[Issue]:
    """A node-locked license's content, judged without ever quoting it; an sdb reference is judged by
    contract.validate, and its value where it is resolved."""
    if secrets.is_reference(value):
        return []
    if not isinstance(value, str) or not value.strip():
        return [
            Issue(
                path,
                "is required: the license file's text (use a YAML block `content: |`), or an "
                "sdb://<profile>/<key> reference to it; the value is never shown",
            )
        ]
    return []


def _check_nodelocked(entry, path) -> list[Issue]:
    issues = []
    target = entry.get("path")
    if (
        not isinstance(target, str)
        or not SAFE_PATH.match(target)
        or os.path.normpath(target) != target
    ):
        issues.append(
            Issue(
                f"{path}:path",
                "must be the license file's absolute path (letters, digits and "
                ". _ + - / only, no '..', '.' or '//'), e.g. /opt/studio/licenses/katana.lic; "
                f"got {target!r}",
            )
        )
    else:
        problem = name_issue(
            os.path.basename(target),
            f"{path}:path",
            "license file names",
            _FILE_NAME,
            "letters, digits and . _ + -",
        )
        issues += [problem] if problem else []
    issues += check_content(entry.get("content"), f"{path}:content")
    if file_mode(entry.get("mode", "0600")) is None:
        issues.append(
            Issue(f"{path}:mode", f'must be "0600" or "0640" (quoted), got {entry.get("mode")!r}')
        )
    for key in ("owner", "group"):
        value = entry.get(key, "root")
        if not isinstance(value, str) or not _ACCOUNT.match(value):
            issues.append(
                Issue(
                    f"{path}:{key}",
                    f"must be a {'user' if key == 'owner' else 'group'} name, got {value!r}",
                )
            )
    variable = entry.get("variable")
    if variable is not None and not (isinstance(variable, str) and ENV_NAME.match(variable)):
        issues.append(
            Issue(
                f"{path}:variable",
                f"must be an environment variable name such as foundry_LICENSE, got {variable!r}",
            )
        )
    return issues


def check_entry(name, entry) -> list[Issue]:
    """One `workstation:licenses:<name>`, secrets included."""
    issues: list[Issue] = []
    shape = f"a type ({', '.join(TYPES)}) and its settings"
    for checked_name, checked, path in named_entries(
        {name: entry}, SECTION, shape, ALL_KEYS, issues
    ):
        issues += _check_typed_entry(checked_name, checked, path)
    return issues


def _check_typed_entry(name, entry, path) -> list[Issue]:
    kind = entry.get("type")
    if kind is None:
        return [Issue(f"{path}:type", f"is required: one of {', '.join(TYPES)}")]
    if kind not in TYPES:
        close = difflib.get_close_matches(str(kind), TYPES, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return [
            Issue(f"{path}:type", f"unknown type '{kind}'; use one of {', '.join(TYPES)}{hint}")
        ]
    issues = [
        Issue(f"{path}:{key}", f"does not apply to type '{kind}'; remove it")
        for key in entry
        if key in ALL_KEYS and key not in TYPE_KEYS[kind]
    ]
    if (
        kind == "rlm"
        and "isv" in entry
        and not (isinstance(entry["isv"], str) and _IDENTIFIER.match(entry["isv"]))
    ):
        issues.append(
            Issue(
                f"{path}:isv",
                f"must be the ISV name as RLM spells it (foundry, redshift, ...), got {entry['isv']!r}",
            )
        )
    if (
        kind == "flexlm"
        and "vendor" in entry
        and not (isinstance(entry["vendor"], str) and _IDENTIFIER.match(entry["vendor"]))
    ):
        issues.append(
            Issue(
                f"{path}:vendor",
                f"must be the FlexLM vendor daemon name (ADSKFLEX, ...), got {entry['vendor']!r}",
            )
        )
    if kind == "autodesk":
        issues += _check_autodesk(entry, path)
    if kind == "nodelocked":
        issues += _check_nodelocked(entry, path)
    return issues + _check_servers(name, entry, path)


# --------------------------------------------------------------------------- the section


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


def sidefx_server_list(entry) -> str:
    """hserver's server chain: servers joined with ';', tried in order."""
    return ";".join(entry["servers"])


@dataclass
class Section:
    """`workstation:licenses` judged as a whole: its issues, the entries that may act, and their variables."""

    issues: list[Issue]
    accepted: list[str]
    variables: dict[str, str]


def check_section(section, params) -> Section:
    """Every issue of the section; the entries without one, which claim no variable, vendor file or
    license path another entry claims first (sorted by name); the variables those set."""
    if not isinstance(section, dict):
        return Section(
            [
                Issue(
                    path_of(SECTION),
                    "must map license names to {type: ..., servers: [...]} (see docs/licenses.md)",
                )
            ],
            [],
            {},
        )
    found = Section([], [], {})
    claimed: dict[
        tuple, str
    ] = {}  # a variable, the sidefx or chaos file, a license file's path -> the entry
    for name in sorted(section, key=str):
        problems = check_entry(name, section[name]) or _clashes(
            name, section[name], params, claimed
        )
        found.issues += problems
        if not problems:
            found.accepted.append(name)
            found.variables.update(variables_of(section[name], params))
    found.variables = dict(sorted(found.variables.items()))
    return found


def _clashes(name, entry, params, claimed) -> list[Issue]:
    """The Issue when this entry claims what an earlier one claimed; else none, and its claims recorded."""
    path, kind = path_of(SECTION, name), entry["type"]
    claims = (
        [("file", kind)]
        if kind in ("sidefx", "chaos")
        else [("path", entry["path"])]
        if kind == "nodelocked"
        else []
    )
    claims += [("variable", variable) for variable in variables_of(entry, params)]
    first = next((claim for claim in claims if claim in claimed), None)
    if first is None:
        claimed.update(dict.fromkeys(claims, name))
        return []
    earlier = path_of(SECTION, claimed[first])
    if first[0] == "file":
        what = "hserver server list" if kind == "sidefx" else "vrlclient.xml"
        return [
            Issue(
                path,
                f"a second {kind} entry; {earlier} already writes the machine's one {what}: merge them",
            )
        ]
    if first[0] == "path":
        return [Issue(f"{path}:path", f"{entry['path']} is already written by {earlier}")]
    return [
        Issue(
            path,
            f"sets {first[1]}, which {earlier} sets too; one entry per variable (list every server in that one)",
        )
    ]


def _check_catalog_references(config, names) -> list[Issue]:
    """Catalog versions' `licenses: [...]`, and the licenses the productions' app versions need."""
    issues = []
    catalog = config.get("catalog")
    for app, entry in catalog.items() if isinstance(catalog, dict) else ():
        versions = entry.get("versions") if isinstance(entry, dict) else None
        for version, spec in versions.items() if isinstance(versions, dict) else ():
            if isinstance(spec, dict) and "licenses" in spec:
                needed = spec["licenses"]
                if not isinstance(needed, list) or not all(
                    isinstance(item, str) for item in needed
                ):
                    issues.append(
                        Issue(
                            path_of("catalog", app, "versions", version, "licenses"),
                            f"must list license names from workstation:licenses, e.g. [foundry], got {needed!r}",
                        )
                    )
    for wanted in pillar.wanted_versions(config):
        for license_name in licenses_needed(wanted.spec):
            if license_name not in names:
                for used_by in wanted.used_by:
                    issues.append(
                        Issue(
                            used_by,
                            (
                                f"{wanted.app} {wanted.version} needs license '{license_name}' "
                                f"({path_of('catalog', wanted.app, 'versions', wanted.version, 'licenses')}), which "
                                f"workstation:licenses does not define; add {path_of(SECTION, license_name)} or drop it there"
                            ),
                        )
                    )
    return issues


def licenses_needed(spec) -> list[str]:
    """The license names a catalog version lists (`licenses: [...]`), the well-formed ones."""
    needed = spec.get("licenses") if isinstance(spec, dict) else None
    return [name for name in needed if isinstance(name, str)] if isinstance(needed, list) else []


def chaos_dir_issues(params) -> list[Issue]:
    """VRAY_AUTH_CLIENT_FILE_PATH names chaos_dir: it must be a path the environment files can hold."""
    if isinstance(params.get("chaos_dir"), str) and SAFE_PATH.match(params["chaos_dir"]):
        return []
    return [
        Issue(
            path_of("os", SECTION, "chaos_dir"),
            f"must be an absolute path, got {params.get('chaos_dir')!r}",
        )
    ]


def check(config) -> list[Issue]:
    """Every problem in `workstation:licenses`, `workstation:os:licenses` and the catalog's `licenses` lists."""
    section = config.get(SECTION, {})
    issues = check_parameters(config) + check_section(section, parameters(config)).issues
    names = set(section) if isinstance(section, dict) else set()
    return issues + _check_catalog_references(config, names)
