"""Robot, camera, tactile and teleop drivers for robolearn (vendor SDKs are imported lazily)."""


def register() -> dict[str, object]:
    """Device families provided by this distribution, by name."""
    return {}
