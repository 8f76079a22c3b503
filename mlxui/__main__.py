from mlxui.cli import main

raise SystemExit(main())
