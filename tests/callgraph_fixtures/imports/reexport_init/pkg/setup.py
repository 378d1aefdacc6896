def configure():
    return "configured"
