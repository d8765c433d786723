"""fpnpipe: FPN-IAIA-BL pipeline library."""
