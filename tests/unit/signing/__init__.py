"""Tests of chalicelib/signing/."""
