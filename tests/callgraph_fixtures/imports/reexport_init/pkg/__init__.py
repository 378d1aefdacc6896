from .impl import Engine as Motor
from .impl import run
from .setup import configure

configure()
