"""``python -m bridge`` runs the ``stembridge`` command."""

import sys

from bridge.cli import main

sys.exit(main())
