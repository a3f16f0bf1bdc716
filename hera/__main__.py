"""``python -m hera`` is the ``hera`` command."""

from hera.cli import main

raise SystemExit(main())
