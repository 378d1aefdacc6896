"""Module attributes: a function, an alias of it, an instance created in the module."""
import conf

conf.alias()
conf.default.load()
conf.real()
