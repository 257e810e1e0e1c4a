"""``python -m sim``: the ``sim`` command line (:func:`sim.cli.main.main`)."""

import sys

from sim.cli.main import main

sys.exit(main())
