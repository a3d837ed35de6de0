"""``python -m auditor.collectors.querylog LOG...``: see parallel.main."""

from auditor.collectors.querylog.parallel import main

raise SystemExit(main())
