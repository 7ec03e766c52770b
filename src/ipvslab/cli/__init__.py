"""Command-line interface: thin commands that parse options and call the layers."""
