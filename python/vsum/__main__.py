"""``python -m vsum`` is the ``vsum`` command."""

import sys

from .cli import main

sys.exit(main())
