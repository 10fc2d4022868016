"""``python -m seqlab.kit release|grade|demo-class``: the instructor's commands."""

import sys

from seqlab.kit.course import main

sys.exit(main())
