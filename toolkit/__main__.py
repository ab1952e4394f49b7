"""``python -m toolkit``: the ``durable`` command, for environments without the script."""

from toolkit.cli import main

main()
