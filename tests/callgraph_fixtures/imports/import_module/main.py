"""`import m` binds the module; `m.f()` calls its function; the module's own code is its key."""
import helpers

helpers.greet()
