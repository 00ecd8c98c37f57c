"""Key-by-key merges into vendor INI files, keeping everything the pillar does not name.

Vendors ship their agent config with comments, commented-out examples and
their own defaults (Amazon DCV's dcv.conf, HP Anyware's pcoip-agent.conf,
TigerVNC's vncserver.users). A studio names a few keys; every other line,
comment and the order of the file stay exactly as they were, and the file is
rewritten (atomically, its mode and owner kept) only when a named key differs.

`wanted` maps a section name to {key: value}; the section "" is the part of the
file before any `[section]` header (the whole file for sectionless formats).
A value of None removes the key.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

from salt_workstation import safefs
from salt_workstation.errors import WorkstationError

TOP = ""  # the section of keys before any [header]


@dataclass(frozen=True)
class Dialect:
    """How one vendor's format writes keys and values."""

    name: str
    separator: str  # between key and value on lines we add: "=" (DCV, TigerVNC) or " = " (PCoIP)
    quote_strings: bool  # DCV reads TOML-like values: "text", 8443, true
    bare_flags: bool  # TigerVNC: a line `localhost` is a flag; True writes it, False removes it

    def render(self, value) -> str | None:
        """The value text written after the separator; None for a bare flag line."""
        if isinstance(value, bool):
            if self.bare_flags:
                return None
            if self.quote_strings:
                return "true" if value else "false"
            return "1" if value else "0"
        if isinstance(value, (int, float)):
            return str(value)
        text = str(value)
        if self.quote_strings:
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return text


DCV = Dialect("dcv", "=", quote_strings=True, bare_flags=False)
PCOIP = Dialect("pcoip", " = ", quote_strings=False, bare_flags=False)
TIGERVNC = Dialect("tigervnc", "=", quote_strings=False, bare_flags=True)
KEYFILE = Dialect(
    "keyfile", "=", quote_strings=False, bare_flags=False
)  # GLib key files: GDM's custom.conf
DIALECTS = {dialect.name: dialect for dialect in (DCV, PCOIP, TIGERVNC, KEYFILE)}

_HEADER = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_COMMENT = re.compile(r"^\s*[#;]")
FLAG = object()  # the value of a bare flag line


@dataclass
class _Line:
    text: str  # without its line ending
    section: str
    key: str | None = None
    value: object = None  # the stripped value text, or FLAG


def _parse(text: str, dialect: Dialect) -> list[_Line]:
    lines, section = [], TOP
    for raw in text.splitlines():
        header = _HEADER.match(raw)
        if header:
            section = header.group(1).strip()
            lines.append(_Line(raw, section))
        elif not raw.strip() or _COMMENT.match(raw):
            lines.append(_Line(raw, section))
        elif "=" in raw:
            key, value = raw.split("=", 1)
            lines.append(_Line(raw, section, key.strip(), value.strip()))
        elif dialect.bare_flags:
            lines.append(_Line(raw, section, raw.strip(), FLAG))
        else:
            lines.append(_Line(raw, section))
    return lines


def _wanted_text(value, dialect: Dialect):
    """What the line's value should read: None to remove the key, FLAG for a bare flag, else the text."""
    if value is None or (value is False and dialect.bare_flags):
        return None
    rendered = dialect.render(value)
    return FLAG if rendered is None else rendered


def _line_for(key: str, wanted, dialect: Dialect) -> str:
    return key if wanted is FLAG else f"{key}{dialect.separator}{wanted}"


def _replace_value(line: _Line, key: str, wanted, dialect: Dialect) -> str:
    """Keep the line's own spacing around '=' and change only the value."""
    if wanted is FLAG or line.value is FLAG:
        return _line_for(key, wanted, dialect)
    prefix = line.text.split("=", 1)[0]
    after = line.text.split("=", 1)[1]
    gap = after[: len(after) - len(after.lstrip())]
    return f"{prefix}={gap}{wanted}"


def label(section: str, key: str) -> str:
    """How a key is named in changes and reports: `[connectivity] web-port`, or the bare key."""
    return f"[{section}] {key}" if section else key


def _shown(value):
    return "(flag)" if value is FLAG else value


def _insertion_point(lines: list[_Line], section: str, key: str) -> int | None:
    """Where a new key goes in its section: after its commented-out example, else after the section's last
    non-blank line. None when the section is not in the file."""
    example = re.compile(r"^\s*[#;]\s*" + re.escape(key) + r"\s*(=|$)")
    last, found = None, None
    for index, line in enumerate(lines):
        if line.section != section:
            continue
        if _HEADER.match(line.text) or line.text.strip():
            last = index
        if example.match(line.text):
            found = index
    if found is not None:
        return found + 1
    if last is not None:
        return last + 1
    if section == TOP:
        return 0
    return None


def merge(text: str, wanted: dict, dialect: Dialect) -> tuple[str, dict]:
    """The merged text and the changes {label: {"old": ..., "new": ...}} (values as written; None: absent)."""
    lines = _parse(text, dialect)
    changes: dict = {}
    for section in wanted:
        for key, value in wanted[section].items():
            want = _wanted_text(value, dialect)
            present = [line for line in lines if line.section == section and line.key == key]
            if present:
                old = present[
                    -1
                ].value  # the last one wins for most readers: report what is in force
                if want is None:
                    lines = [line for line in lines if line not in present]
                    changes[label(section, key)] = {"old": _shown(old), "new": None}
                    continue
                if all(line.value == want for line in present):
                    continue
                for line in present:
                    line.text, line.value = _replace_value(line, key, want, dialect), want
                changes[label(section, key)] = {"old": _shown(old), "new": _shown(want)}
                continue
            if want is None:
                continue
            new = _Line(_line_for(key, want, dialect), section, key, want)
            where = _insertion_point(lines, section, key)
            if where is None:  # a new section at the end, set off by a blank line
                if lines and lines[-1].text.strip():
                    lines.append(_Line("", lines[-1].section))
                lines.append(_Line(f"[{section}]", section))
                lines.append(new)
            else:
                lines.insert(where, new)
            changes[label(section, key)] = {"old": None, "new": _shown(want)}
    if not changes:
        return text, {}
    newline = "\r\n" if "\r\n" in text else "\n"
    return newline.join(line.text for line in lines) + newline, changes


def values(text: str, wanted: dict, dialect: Dialect) -> dict:
    """For each wanted key: (what the file says, what the pillar wants), both as written; for drift reports."""
    lines = _parse(text, dialect)
    report = {}
    for section in wanted:
        for key, value in wanted[section].items():
            present = [line for line in lines if line.section == section and line.key == key]
            report[label(section, key)] = (
                _shown(present[-1].value) if present else None,
                _shown(_wanted_text(value, dialect)),
            )
    return report


def read(path: str) -> str | None:
    """The file's text; None when absent. A link there is refused (UnsafePath), never read through:
    the merge would copy whatever it points to into the agent's config."""
    data = safefs.read_file(path)
    # surrogateescape: bytes that are not UTF-8 come back out unchanged when the file is rewritten
    return None if data is None else data.decode("utf-8", "surrogateescape")


def write_atomically(path: str, text: str, mode: int = 0o644) -> None:
    """Replace path with text in one rename; an existing file keeps its mode and owner.
    The folder is the agent package's: it is never made here."""
    directory, name = os.path.split(path)
    try:
        holder = safefs.Dir.root(directory or ".")
    except FileNotFoundError:
        raise WorkstationError(
            f"{directory} does not exist: is the agent's package installed?"
        ) from None
    with holder:
        current = holder.lstat(name)
        keep = current is not None and stat.S_ISREG(current.st_mode)
        holder.write_file(
            name,
            text.encode("utf-8", "surrogateescape"),
            stat.S_IMODE(current.st_mode) if keep else mode,
            current.st_uid if keep else None,
            current.st_gid if keep else None,
        )


def merge_file(
    path: str, wanted: dict, dialect: Dialect, test: bool = False, mode: int = 0o644
) -> dict:
    """Merge the wanted keys into path; returns the changes (written only when there are some, never under test)."""
    text = read(path)
    merged, changes = merge(text or "", wanted, dialect)
    if changes and not test:
        write_atomically(path, merged, mode)
    return changes
