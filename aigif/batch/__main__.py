"""``python -m aigif.batch`` (and ``accelerate launch -m aigif.batch``)."""
import sys

from . import main

sys.exit(main())
