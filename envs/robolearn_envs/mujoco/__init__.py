"""Native MuJoCo manipulation tasks with their own MJCF and scripted experts."""


def register() -> list[str]:
    """Register the native MuJoCo tasks with gymnasium; return their ids."""
    return []
