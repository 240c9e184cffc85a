"""``python -m neatpipe``: the ``neatpipe`` command."""

import sys

from neatpipe.cli import main

sys.exit(main())
