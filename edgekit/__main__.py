"""`python -m edgekit` runs the command-line interface."""

from edgekit.cli.app import main

if __name__ == "__main__":
    main()
