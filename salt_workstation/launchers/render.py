"""Text of the files the launchers write: POSIX sh wrappers, studio-launch, freedesktop entries
and menus, Maya modules and Houdini packages.

Pure functions of their arguments. Every value that reaches a shell is quoted
with shlex.quote; no file written here needs Salt or Python at run time.
"""

from __future__ import annotations

import json
import shlex
from xml.sax.saxutils import escape as xml_escape

from salt_workstation.launchers.contract import PRINT_ENV

HEADER = "# Written by salt-workstation from the workstation pillar; the next apply rewrites it."
# Names the launcher itself sets or relies on; an inherited STUDIO_MANAGED_VARS never unsets these.
KEEP_ON_RESET = ("PATH", "STUDIO_BASE_PATH")


def wrapper(
    *,
    production: str,
    app: str,
    version: str,
    command: str,
    target: str,
    on_path: bool,
    env: dict,
    production_bin: str,
) -> str:
    """The launcher `{production}/bin/{command}`: reset, set `env`, exec the app with the artist's arguments.

    target: the absolute path of the binary, or (on_path) a command looked up on the
    artist's PATH, as OS-package apps install theirs.
    """
    names = list(env)
    keep = "|".join(KEEP_ON_RESET)
    binary = '"$studio_target"' if on_path else shlex.quote(target)
    lines = [
        "#!/bin/sh",
        f"# studio-launch: {app} {version} for {production}",
        HEADER,
        "# Forget what another production's launcher set (a session started from inside one).",
        "set -f",
        "for studio_var in ${STUDIO_MANAGED_VARS-}; do",
        f'  case $studio_var in ""|[0-9]*|*[!A-Za-z0-9_]*|{keep}) ;; *) unset "$studio_var" ;; esac',
        "done",
        "set +f",
        "unset studio_var",
        "PATH=${STUDIO_BASE_PATH:-$PATH}",
        'export STUDIO_BASE_PATH="$PATH"',
    ]
    if on_path:
        lines.append(
            f"studio_target=$(command -v {shlex.quote(target)}) || "
            f"{{ echo {shlex.quote(f'studio-launch: {target} is not installed')} >&2; exit 127; }}"
        )
    lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    lines += [
        f'export PATH={shlex.quote(production_bin)}:"$PATH"',
        f"export STUDIO_MANAGED_VARS={shlex.quote(' '.join(names))}",
        f'if [ -n "${{{PRINT_ENV}-}}" ]; then',
        # PATH too: the launcher sets it (the production's bin first), so the artist sees it.
        "  printf '%s=%s\\n' " + " ".join(f'{name} "${name}"' for name in [*names, "PATH"]),
        "  exit 0",
        "fi",
        f'exec {binary} "$@"',
    ]
    return "\n".join(lines) + "\n"


def studio_launch(productions_dir: str) -> str:
    """`studio-launch`: list productions and their apps, start one, or print the environment it gets."""
    return f"""#!/bin/sh
# studio-launch: start an app with a production's environment.
{HEADER}
productions={shlex.quote(productions_dir)}

usage() {{
  cat <<'EOF'
usage: studio-launch                              list the productions and their apps
       studio-launch PRODUCTION APP [--] [ARG...]  start APP with PRODUCTION's environment
       studio-launch --env PRODUCTION APP          print the environment APP gets there
EOF
}}

list() {{
  found=
  for dir in "$productions"/*/bin; do
    [ -d "$dir" ] || continue
    production=${{dir%/bin}}
    echo "${{production##*/}}"
    found=1
    for launcher in "$dir"/*; do
      [ -f "$launcher" ] && [ -x "$launcher" ] || continue
      printf '  %-14s %s\\n' "${{launcher##*/}}" "$(sed -n '2s/^# studio-launch: //p' "$launcher")"
    done
  done
  [ -n "$found" ] || echo "no productions on this workstation"
}}

print_env=
case ${{1-}} in
  ""|-l|--list) list; exit 0 ;;
  -h|--help) usage; exit 0 ;;
  --env) print_env=1; shift ;;
esac
[ $# -ge 2 ] || {{ usage >&2; exit 2; }}
production=$1
app=$2
shift 2
for name in "$production" "$app"; do
  case $name in
    ""|.*|*/*) echo "studio-launch: '$name' is not a production or app name" >&2; exit 2 ;;
  esac
done
[ "${{1-}}" = -- ] && shift
launcher=$productions/$production/bin/$app
if ! [ -f "$launcher" ] || ! [ -x "$launcher" ]; then
  if [ -d "$productions/$production/bin" ]; then
    echo "studio-launch: $production has no app $app" >&2
  else
    echo "studio-launch: no production $production on this workstation" >&2
  fi
  list >&2
  exit 127
fi
if [ -n "$print_env" ]; then
  {PRINT_ENV}=1
  export {PRINT_ENV}
fi
exec "$launcher" "$@"
"""


# Characters that make an Exec argument need quoting (Desktop Entry Specification, "The Exec key").
_EXEC_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def _exec_argument(argument: str) -> str:
    if not any(char in _EXEC_RESERVED for char in argument):
        return argument.replace("%", "%%")
    quoted = "".join("\\" + char if char in '"`$\\' else char for char in argument)
    return '"' + quoted.replace("%", "%%") + '"'


def _string(value: str) -> str:
    """A desktop-entry string value: backslash escapes for the characters the format reserves."""
    return (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    )


def menu_category(production: str) -> str:
    return f"X-Workstation-{production}"


def display_name(production: str) -> str:
    """nightfall -> Nightfall, big-show -> Big Show: what the menu shows for a production."""
    return " ".join(
        part.capitalize()
        for part in production.replace("_", "-").replace(".", "-").split("-")
        if part
    )


def desktop_entry(
    *, production: str, title: str, version: str, command: str, app: str, launcher: str, icon: str
) -> str:
    """A freedesktop Application entry that runs the production's launcher."""
    label = f"{title} {version}" if command == app else f"{title} {version} ({command})"
    exec_line = _string(_exec_argument(launcher)) + " %F"
    return (
        "\n".join(
            [
                "[Desktop Entry]",
                "Type=Application",
                "Version=1.0",
                f"Name={_string(f'{display_name(production)} — {label}')}",
                f"GenericName={_string(title)}",
                f"Comment={_string(f'{label} with the {production} environment')}",
                f"TryExec={_string(launcher)}",
                f"Exec={exec_line}",
                f"Icon={_string(icon)}",
                "Terminal=false",
                "StartupNotify=true",
                # Graphics: a registered main category (desktop-file-validate asks for one), so
                # the entry also shows in desktops' Graphics menu; the production's own category
                # puts it in the production's submenu.
                f"Categories=Graphics;{menu_category(production)};",
                f"X-Workstation-Production={production}",
            ]
        )
        + "\n"
    )


def directory_entry(production: str) -> str:
    """The menu folder's name and icon (desktop-directories/*.directory)."""
    return (
        "\n".join(
            [
                "[Desktop Entry]",
                "Type=Directory",
                "Version=1.0",
                f"Name={_string(display_name(production))}",
                f"Comment={_string(f'Apps set up for the {production} production')}",
                "Icon=folder",
            ]
        )
        + "\n"
    )


def menu(production: str, directory_file: str) -> str:
    """An applications-merged menu fragment: one submenu holding the production's entries."""
    return (
        '<!DOCTYPE Menu PUBLIC "-//freedesktop//DTD Menu 1.0//EN"\n'
        ' "http://www.freedesktop.org/standards/menu-spec/menu-1.0.dtd">\n'
        f"<!-- {xml_escape(HEADER[2:])} -->\n"
        "<Menu>\n"
        "  <Name>Applications</Name>\n"
        "  <Menu>\n"
        f"    <Name>{xml_escape(menu_category(production))}</Name>\n"
        f"    <Directory>{xml_escape(directory_file)}</Directory>\n"
        f"    <Include><Category>{xml_escape(menu_category(production))}</Category></Include>\n"
        "  </Menu>\n"
        "</Menu>\n"
    )


def maya_module(name: str, version: str, path: str) -> str:
    """A Maya module description (.mod): the plugin folder as module root, Linux only."""
    return f"{HEADER}\n+ PLATFORM:linux {name} {version} {path}\n"


def houdini_package(path: str) -> str:
    """A Houdini package: the plugin folder on HOUDINI_PATH, loaded once."""
    return json.dumps({"hpath": path, "load_package_once": True}, indent=2, sort_keys=True) + "\n"


def smb_credentials(username: str, password: str, domain: str | None) -> str:
    """The mount.cifs credentials file (credentials=...): never passed on a command line."""
    lines = [f"username={username}", f"password={password}"]
    if domain:
        lines.append(f"domain={domain}")
    return "\n".join(lines) + "\n"
