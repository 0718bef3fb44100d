"""`python -m dynapot` runs the command-line interface."""

from dynapot.cli import main

main()
