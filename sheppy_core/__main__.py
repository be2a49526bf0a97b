"""``python -m sheppy_core`` is the ``sheppy`` command."""

from sheppy_core.cli import main

main()
