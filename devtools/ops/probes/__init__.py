"""How `ops check` finds its test event at each destination that can be read back: one
module per destination, named by that destination plug-in's `probe` hook
(`chalicelib.destinations.base`), and `base`, what every probe is."""
