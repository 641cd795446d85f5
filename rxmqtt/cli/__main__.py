"""``python -m rxmqtt.cli``: the same as the ``rxmqtt`` console script."""

from rxmqtt.cli import main

raise SystemExit(main())
