"""The phone controller: a WebXR page (a route of robolearn's view app, over HTTPS) streams the phone's pose
over a websocket; `PhoneTeleop` turns the motion into joint targets by IK on the arm's MuJoCo twin.

Modules: `session` (messages, the routes), `cert` (the per-install certificate), `ik` (`TwinIK`), `device`
(`PhoneTeleop`).
"""

from .cert import default_folder, ensure_certificate
from .device import XR_TO_ROBOT, PhoneTeleop, lan_address
from .ik import TwinIK, URToolIK
from .session import PhonePose, PhoneSession, phone_routes

__all__ = ["XR_TO_ROBOT", "PhonePose", "PhoneSession", "PhoneTeleop", "TwinIK", "URToolIK", "default_folder",
           "ensure_certificate", "lan_address", "phone_routes"]
