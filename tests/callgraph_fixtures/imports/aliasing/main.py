"""Every aliasing form: `import a.b as c`, `import a as c`, `from a.b import f as g`,
`from a import b as c`, and a local alias of an imported function."""
import helpers as h
import pkg.tool as t
from pkg import tool as tool_module
from pkg.tool import stop as halt

t.run()
h.greet()
halt()
tool_module.run()
again = h.greet
again()
