"""Two throwaway destinations, each one plug-in module (`destinations/`) and one double
(`<name>_double.py`, named by its plug-in), as a newcomer would write them: `archive`, an AWS
service (each batch one S3 object), and `webhook`, an HTTPS endpoint with a secret (no AWS
at all). tests/devtools/test_adding_a_destination.py plugs them in by adding `destinations/`
to the package chalicelib.destinations lists; nothing else names them."""
