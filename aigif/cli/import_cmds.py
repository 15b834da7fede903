"""CLI commands of this group (filled in by its owner); imported by aigif.cli."""
