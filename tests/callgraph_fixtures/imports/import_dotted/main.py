"""`import pkg.sub.tool` binds `pkg`; the submodule is reached through attributes."""
import pkg.sub.tool

pkg.sub.tool.run()
