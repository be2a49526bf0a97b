"""mkdocs hooks for the docs site (mkdocs.yml ``hooks:``).

- ``<!-- include: plugins/sheppy-sqlite/README.md -->`` on a line of its own is replaced by that file of
  the repository (a backend's page is its README, one text for PyPI, GitHub and the site).
- The pages are also read on the repository itself (GitHub renders ``docs/*.md``), so they link to
  repository files by relative path (``../sheppy_core/backend/_base.py``). On the site those files do
  not exist: such a link points to ``repo_url`` when mkdocs.yml sets one, and is shown as the file's
  name in code otherwise — never a broken link. Links in an included file are read relative to it.

tests/test_docs_site.py expands the includes the same way (:func:`expand_includes`) to run their code.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
_INCLUDE = re.compile(r"^<!-- include: (\S+) -->$", re.M)
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)#\s:]+)(#[^)\s]*)?\)")


def _rebase_links(text: str, source_dir: str, page_dir: str, repo_url: str) -> str:
    """Links of ``text`` (a file in repository folder ``source_dir``) as the page in ``docs/page_dir``
    must write them."""

    def rebased(match: re.Match[str]) -> str:
        label, target, anchor = match.group(1), match.group(2), match.group(3) or ""
        path = posixpath.normpath(posixpath.join(source_dir, target))
        if path.startswith("docs/"):
            relative = posixpath.relpath(path, posixpath.join("docs", page_dir) if page_dir else "docs")
            return f"[{label}]({relative}{anchor})"  # a file of the site: mkdocs checks the link
        if repo_url:
            return f"[{label}]({repo_url}/blob/main/{path}{anchor})"
        return label if label.startswith("`") else f"`{label}`"

    return _LINK.sub(rebased, text)


def expand_includes(markdown: str, page_dir: str = "", repo_url: str = "") -> str:
    """``markdown`` with every include line replaced by the file it names, links rebased."""

    def included(match: re.Match[str]) -> str:
        name = match.group(1)
        text = (ROOT / name).read_text()
        return _rebase_links(text, posixpath.dirname(name), page_dir, repo_url)

    return _INCLUDE.sub(included, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    page_dir = posixpath.dirname(page.file.src_uri)
    repo_url = (config.get("repo_url") or "").rstrip("/")
    own = expand_includes(markdown, page_dir, repo_url)
    return _rebase_links(own, posixpath.join("docs", page_dir), page_dir, repo_url)


# -- docstrings ---------------------------------------------------------------------------------------
# The docstrings are written for Sphinx-style readers (``:func:`x```, ``:data:`~a.b.C```); mkdocstrings
# renders Markdown, where a role would show as written. Griffe hands every docstring to this extension
# first (mkdocs.yml: mkdocstrings ... extensions), which turns each role into code: ``:meth:`connect```
# becomes ``connect`` in code, ``:data:`~sheppy_core.backend.CONTRACT_VERSION``` ``CONTRACT_VERSION``.

_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|data|attr|mod|exc|obj|const):`~?([^`]+)`")


def plain_roles(text: str) -> str:
    def code(match: re.Match[str]) -> str:
        target = match.group(1)
        shown = target.rsplit(".", 1)[-1] if match.group(0).count("~") else target
        return f"`{shown}`"

    return _ROLE.sub(code, text)


try:
    import griffe
except ImportError:  # the hooks module is also imported by the tests, which need no griffe
    pass
else:

    class PlainRoles(griffe.Extension):  # type: ignore[misc]
        """Sphinx roles in docstrings as inline code (see :func:`plain_roles`)."""

        def on_object(self, *, obj: Any, **kwargs: Any) -> None:
            if obj.docstring is not None:
                obj.docstring.value = plain_roles(obj.docstring.value)
