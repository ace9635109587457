"""Devices behind explicit lifecycles: teleoperation (`robolearn.devices.teleop`)."""
