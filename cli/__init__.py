"""The `retail` command line (typer): run the stack, operate orders, import master data."""
