"""``sheppy_core.cli.cli.app``: the ``sheppy`` Typer app under sheppy's module path (``sheppy.cli.cli``),
which sheppy users' CLI tests import (``CliRunner().invoke(app, [...])``)."""

from sheppy_core.cli import app

__all__ = ["app"]
