"""``python -m toolkit.cli``: the same as the ``durable`` command."""

from toolkit.cli import main

main(prog_name="durable")
