"""Star imports pass on re-exports: `pkg` star-imports `pkg.impl`, which imports `run` from `pkg.tools`;
`from pkg import *` binds `run` and `helper` here (not `_secret`, whose name is private)."""
from pkg import *

run()
helper()
