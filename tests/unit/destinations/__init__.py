"""Tests of chalicelib/destinations/, one module per destination."""
