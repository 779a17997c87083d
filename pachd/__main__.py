"""`python -m pachd`: run the server (see pachd.server)."""
import sys

from pachd.server import main

sys.exit(main())
