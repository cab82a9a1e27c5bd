"""``python -m bulkhead`` == the ``bulkhead`` command."""

from bulkhead.cli.main import main

main()
