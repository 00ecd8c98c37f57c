"""
Serve the formulas that ship inside this package, so that

.. code-block:: yaml

    fileserver_backend:
      - roots
      - workstation

makes ``state.apply workstation`` work with nothing copied. The files are
read-only package data and are served in the ``base`` environment.

There is no ``update`` function on purpose: package data never changes under a
running master, and a backend with one must also have a
``workstation_update_interval`` in the master config, or the master warns at
start-up that the key is missing.
"""

import os

import salt.utils.files
import salt.utils.hashutils

from salt_workstation import FORMULA_ROOT
from salt_workstation import formula as ws_formula
from salt_workstation.paths import is_inside

__virtualname__ = "workstation"

_SALTENV = "base"


def __virtual__():
    return __virtualname__


def envs():
    """The environments this backend serves."""
    return [_SALTENV]


def find_file(path, saltenv=_SALTENV, **kwargs):  # pylint: disable=unused-argument
    """Find ``path`` among the shipped formula files."""
    fnd = {"path": "", "rel": ""}
    if saltenv != _SALTENV or os.path.isabs(path):
        return fnd
    full = os.path.normpath(os.path.join(FORMULA_ROOT, path))
    if (
        not is_inside(FORMULA_ROOT, full)
        or not os.path.isfile(full)
        or not ws_formula.shipped(path)
    ):
        return fnd
    return {"path": full, "rel": os.path.normpath(path), "stat": list(os.stat(full))}


def serve_file(load, fnd):
    """Return one chunk of a found file."""
    ret = {"data": "", "dest": ""}
    if not fnd.get("path") or "loc" not in load:
        return ret
    ret["dest"] = fnd["rel"]
    with salt.utils.files.fopen(fnd["path"], "rb") as handle:
        handle.seek(load["loc"])
        ret["data"] = handle.read(__opts__["file_buffer_size"])
    return ret


def file_hash(load, fnd):  # pylint: disable=unused-argument
    """Hash a found file with the master's hash_type (the files are small)."""
    if not fnd.get("path"):
        return {}
    return {
        "hash_type": __opts__["hash_type"],
        "hsum": salt.utils.hashutils.get_hash(fnd["path"], __opts__["hash_type"]),
    }


def file_list(load):
    """Every shipped formula file."""
    if load.get("saltenv", _SALTENV) != _SALTENV:
        return []
    return ws_formula.files()


def dir_list(load):
    """Every folder holding shipped formula files."""
    if load.get("saltenv", _SALTENV) != _SALTENV:
        return []
    return [rel_dir for rel_dir, _ in ws_formula.walk() if rel_dir != "."]


def file_list_emptydirs(load):  # pylint: disable=unused-argument
    return []


def symlink_list(load):  # pylint: disable=unused-argument
    return {}
