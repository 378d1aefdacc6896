"""`import alpha as beta` binds the name `beta` to module alpha; `from beta import run` still
imports the real module beta."""
import alpha as beta
from beta import run as go


def call_alias():
    return beta.run()


def call_from():
    return go()


call_alias()
call_from()
