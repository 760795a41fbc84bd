"""``python -m cryostar_engine`` = ``cryostar-engine``."""
import sys

from .cli import main

sys.exit(main())
