"""espressivo studio: a local web page to open a score, render takes, listen, look, steer and download."""
