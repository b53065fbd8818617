"""Where delivered events go. Each destination is one module behind `base.Destination`."""
