"""Local servers that speak an AWS API moto lacks (Pinpoint, Customer Profiles), and a proxy
that misbehaves on purpose. Used by the local stack's dry run and by the tests."""
