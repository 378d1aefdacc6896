from pkg.impl import *
