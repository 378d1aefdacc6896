from ..core import base
from . import helper
from .helper import other as aid


def work():
    base()
    helper.assist()
    return aid()
