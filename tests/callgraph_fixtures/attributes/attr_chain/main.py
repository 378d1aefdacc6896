"""A chain of attributes across objects built in `__init__`s, and methods returning `self`."""


class Connection:
    def execute(self):
        return 1


class Database:
    def __init__(self):
        self.conn = Connection()


class App:
    def __init__(self):
        self.db = Database()


class Query:
    def where(self):
        return self

    def order(self):
        return self

    def fetch(self):
        return []


def run():
    app = App()
    return app.db.conn.execute()


def build():
    return Query().where().order().fetch()


run()
build()
