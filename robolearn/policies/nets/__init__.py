"""Network building blocks shared by the policies: denoisers and observation encoders."""
