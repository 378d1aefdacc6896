"""Names re-exported by a package's `__init__` (one under another name), reached with `from pkg
import ...` and as `pkg.name`; the package's own code calls a function at import."""
import pkg
from pkg import Motor, run

pkg.run()
run()
Motor().start()
