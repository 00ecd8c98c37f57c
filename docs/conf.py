"""Sphinx configuration: reference docs from the loader modules' docstrings, plus the
Markdown guides beside this file (read through myst-parser, and by GitHub as they are).

`make docs` builds it with -W --keep-going into build/docs (ignored).
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))

import salt_workstation  # noqa: E402  (after the path above, so a checkout needs no install)

project = "salt-workstation"
author = "salt-workstation contributors"
copyright = "salt-workstation contributors"
release = version = salt_workstation.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
# The guides link to each other's sections (pillar.md#repair); anchors for h1 to h3.
myst_heading_anchors = 3
# Each loader module's page is written by hand under ref/ (as in saltext projects),
# so autosummary only lists them.
autosummary_generate = False
autodoc_default_options = {"member-order": "bysource"}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "alabaster"
html_title = f"salt-workstation {release}"

LOADER_KINDS = ("modules", "states", "grains", "runners", "fileserver")


def _check_every_loader_module_has_a_page(app):
    """A loader module without a reference page is a warning, so -W fails the build."""
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    for kind in LOADER_KINDS:
        for source in sorted((REPO / "salt_workstation" / kind).glob("*_mod.py")):
            page = DOCS / "ref" / kind / f"salt_workstation.{kind}.{source.stem}.rst"
            if not page.is_file():
                logger.warning(
                    "%s has no reference page: add %s (automodule, as its neighbours do) "
                    "and list it in %s",
                    source.relative_to(REPO),
                    page.relative_to(REPO),
                    (page.parent / "index.rst").relative_to(REPO),
                )


def setup(app):
    app.connect("builder-inited", _check_every_loader_module_has_a_page)
