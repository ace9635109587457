"""robolearn: record demonstrations, train visuomotor policies, deploy them in a real-time loop."""

__version__ = "0.1.0"
