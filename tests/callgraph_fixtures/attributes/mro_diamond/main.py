"""A diamond: C3 puts C before A (D, B, C, A); depth-first lookup would wrongly find A.who."""


class A:
    def who(self):
        return "A"


class B(A):
    pass


class C(A):
    def who(self):
        return "C"


class D(B, C):
    pass


def ask():
    return D().who()


ask()
