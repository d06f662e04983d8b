"""``python -m zoo_ops.testing.kube_api``: run the stand-in's command line (see :mod:`.cli`)."""

import sys

from zoo_ops.testing.kube_api.cli import main

if __name__ == "__main__":
    sys.exit(main())
