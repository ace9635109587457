"""placeholder until the tactile sensor lands."""


def register():
    return {}
