"""Keep library progress bars and deprecation chatter out of aigif's output."""
from __future__ import annotations

import contextlib
import warnings


@contextlib.contextmanager
def quiet(progress: bool):
    """Silence library progress bars and deprecation chatter while loading (restored afterwards)."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    was_d, was_t = dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    level_d, level_t = dlog.get_verbosity(), tlog.get_verbosity()
    try:
        if not progress:
            dlog.disable_progress_bar()
            tlog.disable_progress_bar()
        dlog.set_verbosity_error()
        tlog.set_verbosity_error()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        (dlog.enable_progress_bar if was_d else dlog.disable_progress_bar)()
        (tlog.enable_progress_bar if was_t else tlog.disable_progress_bar)()
        dlog.set_verbosity(level_d)
        tlog.set_verbosity(level_t)
