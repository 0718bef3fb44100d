"""`python -m dynapot.cli` runs the command-line interface, as `python -m dynapot` does."""

from dynapot.cli import main

main()
