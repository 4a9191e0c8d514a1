"""`python -m aeromancy` runs the `aero` command line."""

from aeromancy.cli.main import main

main()
