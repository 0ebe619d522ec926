"""``python -m batchgenre.cli``: the same as the ``batchgenre`` command."""

import sys

from batchgenre.cli import main

sys.exit(main())
