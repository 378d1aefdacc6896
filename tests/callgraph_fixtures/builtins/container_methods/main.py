"""Methods of list, dict, set and tuple values made by literals."""


def run():
    items = [1, 2]
    items.append(3)
    items.pop()
    table = {"a": 1}
    keys = list(table.keys())
    for _key, _value in table.items():
        pass
    table.get("a")
    seen = {1}
    seen.add(2)
    pair = (1, 2)
    return pair.index(2), keys


run()
