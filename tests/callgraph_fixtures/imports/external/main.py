"""Names outside the code base are named by their import path, whatever the local alias."""
import json as j
import os.path
from collections import OrderedDict
from os.path import basename as base

os.path.join("a", "b")
j.dumps([])
OrderedDict()
base("/x/y")
