"""A submodule is an attribute of its package once imported: `from pkg import beta` loads a
submodule the package's `__init__` never mentions, and `pkg.beta` is then that module too."""
import pkg.alpha
from pkg import beta

pkg.alpha.a()
beta.b()
pkg.beta.b()
