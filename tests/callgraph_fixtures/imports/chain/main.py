"""A name re-exported through two modules (renamed on the way) is still the defining function."""
import a
from a import stuff

a.thing()
stuff()
