"""`python -m streams` is the `ioc` command."""

from streams.cli import main

main()
