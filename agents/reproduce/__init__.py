"""One command per paper's table: ``python -m agents.reproduce NAME``.

Modules: :mod:`~agents.reproduce.run` (the command), :mod:`~agents.reproduce.registry` (what
each paper runs and published) and :mod:`~agents.reproduce.report` (Markdown, PNGs, JSON).
"""

from agents.reproduce.run import main

__all__ = ["main"]
