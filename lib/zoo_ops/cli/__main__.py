from zoo_ops.cli import main

raise SystemExit(main())
