def thing():
    return "thing"
