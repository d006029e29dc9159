"""``python -m molgnn.cli``."""

import sys

from molgnn.cli import main

sys.exit(main())
