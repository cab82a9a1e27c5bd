"""``python -m orchestrator`` == the ``bulkhead`` command."""

from orchestrator.cli import main

main()
