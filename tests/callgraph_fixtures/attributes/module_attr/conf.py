def real():
    return 1


alias = real


class Settings:
    def load(self):
        return 2


default = Settings()
