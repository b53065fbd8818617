"""Signed hits: a JSON Web Token in the query string that binds a hit to one endpoint id.

- `settings`: the TOKEN_* variables (SigningSettings), parsed for every stage that sets one;
- `keys`: where HS256 keys are read (SSM, Secrets Manager) and when they are read again;
- `jwks`: RS256/ES256 keys from a JWKS URL;
- `verify`: TokenVerifier, the signature and the claims against the hit;
- `exceptions`: what the pixel catches.

Import each name from its module: a stage without signed hits loads `exceptions` only
(cold start), and nothing here loads the others.
"""
