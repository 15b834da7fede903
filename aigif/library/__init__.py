"""A library of .aigif folders: a SQLite index (:mod:`.index`), search (:mod:`.search`) and a web gallery.

Imports neither torch nor the web server; the gallery and thumbnails load them on first use.
"""
from .db import SCHEMA_VERSION, connect, default_db_path
from .index import IndexReport, index_folders
from .search import Query, detail, search

__all__ = ["SCHEMA_VERSION", "connect", "default_db_path", "IndexReport", "index_folders", "Query", "detail", "search"]
