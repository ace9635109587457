"""placeholder until the teleop devices land."""


def register():
    return {}
