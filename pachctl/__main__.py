"""`python -m pachctl ...` runs the pachctl console script."""
from pachctl.main import main

main()
