"""``python -m scanners``: the same as the ``citycode-scanner`` command."""
from scanners.cli import main

main(prog_name="citycode-scanner")
