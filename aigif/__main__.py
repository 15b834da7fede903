"""``python -m aigif`` runs the command line."""
from .cli import _entry

_entry()
