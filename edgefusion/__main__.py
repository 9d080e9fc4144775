"""Allow ``python -m edgefusion``."""

from edgefusion.cli import main

raise SystemExit(main())
