"""GTM's template runtime, emulated strictly, in Node and in a page (docs/gtm-emulator.md)."""
