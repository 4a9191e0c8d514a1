"""The `aero` command line: thin typer commands over the library."""
