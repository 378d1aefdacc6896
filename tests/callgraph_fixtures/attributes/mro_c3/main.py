"""C3 linearisation of M(A, B) with A(X, Y), B(Y, Z): M, A, X, B, Y, Z, O. Depth-first lookup
would find O.step and O.name; `kind` is found on X before B."""


class O:
    def step(self):
        return "O"

    def name(self):
        return "O"


class X(O):
    def kind(self):
        return "X"


class Y(O):
    def step(self):
        return "Y"


class Z(O):
    def name(self):
        return "Z"


class A(X, Y):
    pass


class B(Y, Z):
    def kind(self):
        return "B"


class M(A, B):
    pass


def probe_step():
    return M().step()


def probe_name():
    return M().name()


def probe_kind():
    return M().kind()


probe_step()
probe_name()
probe_kind()
