"""``python -m hera.agent LAUNCH_JSON``: the agent process (started by ``hera up``)."""

from hera.agent.main import main

raise SystemExit(main())
