"""``python -m seqlab.kit release|grade|demo-class``: the instructor's commands (seqlab.kit.cli)."""

import sys

from seqlab.kit.cli import main

sys.exit(main())
