"""A method name shared by two classes: the call reaches only the receiver's class, and a receiver
nobody passes reaches nothing."""


class Cat:
    def speak(self):
        return "meow"


class Robot:
    def speak(self):
        return "beep"


def run():
    pet = Cat()
    return pet.speak()


def unknown(thing):
    return thing.speak()


run()
